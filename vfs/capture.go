package vfs

// Following the WAL: adopting a generation, reading its committed
// transactions up to SQLite's wal-index, spooling them as LTX files.

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replicator"
)

// adopt checks the WAL header and decides whether the follower may read on.
// A new generation is legitimate only if the shim let a restart through
// since the followed one was adopted (the gate made sure every commit of
// the old one was captured first); anything else means frames may have been
// lost, and a snapshot is owed.
func (db *DB) adopt(ev Events) (bool, error) {
	// The shims count a reset before doing it, so counters read after the
	// header include every reset whose effect the header shows; those read
	// before it are the baseline of a generation adopted now (the counters
	// after it may include resets of that generation itself: two
	// truncations in a row between the two reads left the next header
	// with none counted since, and a snapshot).
	raw := db.host.Events()
	before := db.merge(raw)
	// Resets counted but not yet done here could not have shown in the
	// header read next: they belong to the next generation, not the
	// baseline.
	base := before.Restarts - (raw.Restarts - raw.RestartsDone)
	hdr, st, err := db.fol.CheckHeader()
	if err != nil {
		return false, err
	}
	ev = db.merge(db.host.Events())
	switch st {
	case WALSameGen:
		return true, nil
	case WALMissing, WALEmpty:
		if db.fol.Following() {
			if ev.Restarts == db.genRestarts {
				return false, db.owe("the WAL was reset by another process")
			}
			if db.endsBeyond(ev) {
				return false, db.owe("the WAL was reset before all its commits were read")
			}
			db.fol.Unfollow()
			// Resets counted and not yet done when the WAL was seen
			// empty are of what comes next (a header being written).
			db.genRestarts = base
		} else if db.uncaptured(db.capChange, db.changeKnown) {
			// Between two looks at an empty WAL: a writer without the
			// extension committed and truncated (or deleted) the WAL,
			// its frames now only in the database file.
			return false, db.owe("commits were checkpointed out of the WAL unseen (a writer without the extension truncated it)")
		}
		return false, nil
	default: // WALNewGeneration
		if db.fol.Following() && ev.Restarts == db.genRestarts {
			return false, db.owe("the WAL was restarted by another process")
		}
		// After a counted truncation or deletion the follower follows
		// nothing: a header that a gate counted since starts the next
		// generation, whatever its salts (a connection that never
		// restarted the WAL itself writes random ones).
		afterEmpty := !db.fol.Following() && ev.Restarts > db.genRestarts
		if !afterEmpty && !db.fol.Succeeds(hdr, ev.Restarts-db.genRestarts) {
			linked, wait, err := db.linked(hdr)
			if err != nil || wait {
				return false, err
			}
			if !linked {
				old := db.fol.Header()
				return false, db.owe(fmt.Sprintf("a WAL generation was missed (another process restarted it): followed salt-1 %#x, found %#x, resets counted %d since",
					old.Salt1, hdr.Salt1, ev.Restarts-db.genRestarts))
			}
		}
		if db.fol.Following() && db.endsBeyond(ev) {
			return false, db.owe("the WAL was restarted before all its commits were read")
		}
		db.fol.Follow(hdr)
		db.genRestarts = base
		return true, nil
	}
}

// linked reports whether SQLite's wal-index change counter proves that the
// generation of hdr follows the position captured with no commit between:
// every commit of any connection, with or without the extension, bumps
// it once, across restarts. That is the only link left when the header's
// salts prove nothing: a connection that never restarted the WAL itself
// writes random salts after another one truncated it (a pool whose other
// connection checkpoints). wait reports that no commit at all happened
// since the capture, while the header's first commit is not yet published:
// nothing can have been missed, and the next step decides.
func (db *DB) linked(hdr WALHeader) (linked, wait bool, err error) {
	if !db.changeKnown {
		return false, false, nil
	}
	idx, ok := db.host.WALIndex()
	if !ok {
		return false, false, nil
	}
	var n uint32
	switch ev := db.host.Events(); {
	case idx.Salt1 == hdr.Salt1 && idx.Salt2 == hdr.Salt2:
		n, err = db.fol.CountCommits(hdr, idx.MxFrame)
	case ev.EndSalt1 == hdr.Salt1 && ev.EndSalt2 == hdr.Salt2:
		// A restart of that generation has begun in this process
		// (walRestartHdr reset the wal-index; the gate waits at the
		// truncation or the header write): the end recorded just
		// before it is the generation's.
		idx = WALIndex{MxFrame: ev.EndMxFrame, Change: ev.EndChange}
		n, err = db.fol.CountCommits(hdr, idx.MxFrame)
	case idx.MxFrame == 0 && idx.Salt1 == hdr.Salt1+1:
		// Another process's restart of it has begun (walRestartHdr adds
		// one to salt-1; nothing was committed since, or mxFrame would
		// not be 0): the file still holds the generation, whose gate
		// waits for the capture; its commits are counted by the chain.
		n, err = db.fol.ChainCommits(hdr)
	default:
		return false, idx.Change == db.capChange, nil
	}
	if err != nil {
		return false, false, err
	}
	if idx.Change-db.capChange != n {
		db.logger.Debug("wal-index change counter does not link the WAL generation", "commits_since", idx.Change-db.capChange, "in_generation", n)
		return false, false, nil
	}
	return true, false, nil
}

// verifyGeneration checks, after pages were read from WAL frames, that the
// WAL still holds the generation they were read from. SQLite rewrites the
// header before it overwrites any frame of a restarted WAL, so an unchanged
// header proves the frames read were not overwritten. This process's own
// restarts wait at the gate; this catches another process's.
func (db *DB) verifyGeneration() error {
	if !db.fol.Following() {
		return nil
	}
	if _, st, err := db.fol.CheckHeader(); err != nil {
		return err
	} else if st != WALSameGen {
		db.needSnapshot = true
		return ErrWALChanged
	}
	return nil
}

// endsBeyond reports whether the followed generation was recorded to end
// past the last frame read from it.
func (db *DB) endsBeyond(ev Events) bool {
	hdr := db.fol.Header()
	if ev.EndSalt1 != hdr.Salt1 || ev.EndSalt2 != hdr.Salt2 {
		return false
	}
	return WALHeaderSize+int64(ev.EndMxFrame)*hdr.FrameSize() > db.fol.Offset()
}

// bounds returns the frames of the followed generation a step reads:
// frames 1..trusted are committed (trusted), and none past limit is read.
// The limit is the wal-index's committed frame count if the live header
// belongs to the followed generation, else the frames the file holds now
// (an owner that has not read has no wal-index): commits landing while the
// step runs are the next step's.
func (db *DB) bounds() (trusted, limit uint32, err error) {
	n, exact := db.trusted()
	if exact {
		return n, n, nil
	}
	limit, err = db.fol.Frames()
	return n, max(limit, n), err
}

// trusted returns how many frames of the followed generation SQLite's
// wal-index says are committed: the latest of the value published with the
// last announced commit (of this process, or in the shared state of
// another), the live header (which also covers commits of other processes)
// and the recorded end of the generation. exact reports
// that the live header belongs to the followed generation: then no frame
// past n is committed, and the follower need not read past it.
func (db *DB) trusted() (n uint32, exact bool) {
	hdr := db.fol.Header()
	ev := db.host.Events()
	if ev.Salt1 == hdr.Salt1 && ev.Salt2 == hdr.Salt2 {
		n = ev.MxFrame
	}
	if ev.EndSalt1 == hdr.Salt1 && ev.EndSalt2 == hdr.Salt2 {
		n = max(n, ev.EndMxFrame)
	}
	if mx, s1, s2, ok := db.sh.committed(); ok && s1 == hdr.Salt1 && s2 == hdr.Salt2 {
		n = max(n, mx)
	}
	db.boundExact = false
	if idx, ok := db.host.WALIndex(); ok && idx.Salt1 == hdr.Salt1 && idx.Salt2 == hdr.Salt2 {
		n, exact = max(n, idx.MxFrame), idx.MxFrame >= n
		db.bound, db.boundExact = idx, exact
	}
	return n, exact
}

func (db *DB) owe(why string) error {
	db.needSnapshot = true
	db.logger.Warn("snapshot needed", "reason", why)
	return nil
}

// follow ships every committed transaction found in the WAL.
func (db *DB) follow(ev Events) error {
	ok, err := db.adopt(ev)
	if err != nil || !ok {
		if err == nil && db.needSnapshot {
			return db.snapshot()
		}
		return err
	}
	// One bound per step: commits that land while this step runs are the
	// next step's. Chasing them here made a step under load a long run of
	// tiny LTX files.
	n, limit, err := db.bounds()
	if err != nil {
		return err
	}
	for {
		txns, err := db.fol.ReadTxns(maxBatchBytes, n, limit)
		if err != nil {
			db.changeKnown = false
			return err
		}
		if len(txns) == 0 {
			db.linkCaptured()
			return nil
		}
		db.capChange += uint32(len(txns))
		if err := db.append(txns); err != nil || db.needSnapshot {
			db.changeKnown = db.changeKnown && err == nil && !db.needSnapshot
			return err
		}
	}
}

// linkCaptured takes the wal-index change counter of the step's bounds as
// that of the position captured, once the follower has read every commit
// it covers.
func (db *DB) linkCaptured() {
	if db.boundExact && db.fol.Offset() == WALHeaderSize+int64(db.bound.MxFrame)*db.fol.Header().FrameSize() {
		db.capChange, db.changeKnown = db.bound.Change, true
	}
}

// append spools txns as one LTX file.
func (db *DB) append(txns []Txn) error {
	pages := make(map[uint32]int64)
	for _, t := range txns {
		for pgno, off := range t.Pages {
			pages[pgno] = off
		}
	}
	pgnos := make([]uint32, 0, len(pages))
	for pgno := range pages {
		pgnos = append(pgnos, pgno)
	}
	sort.Slice(pgnos, func(i, j int) bool { return pgnos[i] < pgnos[j] })
	read := func(pgno uint32, buf []byte) error {
		_, err := db.fol.ReadAt(buf, pages[pgno])
		return err
	}
	db.batched += len(txns)
	commit := txns[len(txns)-1].Commit
	_, err := db.rep.Append(len(txns), db.fol.Header().PageSize, commit, pgnos, read, db.verifyGeneration, time.Now())
	switch {
	case errors.Is(err, replicator.ErrPageSizeChanged):
		return db.owe("page size changed")
	case errors.Is(err, replicator.ErrNotInitialized):
		return db.owe("the replicator dropped its chain (spool write failed or spool full)")
	}
	return err
}
