package vfs

// Snapshots and resumes: reading the whole state consistently (a held read
// transaction, checkpoint writes held back), and continuing the chain
// where the state matches the last spooled position.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replicator"
	"github.com/superfly/ltx"
)

// snapshot captures the whole current state while the shim holds back
// this process's checkpoint writes and WAL resets and a read transaction
// holds back other processes' checkpoints: the database file plus the
// WAL's last committed frame of each page. On the first capture after open it first
// tries to resume: if the state's checksum equals the last spooled or
// replicated position, no snapshot is written.
func (db *DB) snapshot() error {
	if wal, empty, err := db.walMode(); err != nil || empty || !wal {
		return err // nothing to snapshot yet
	}
	// A reader that finds the wal-index unbuilt runs WAL recovery under
	// the WAL_WRITE lock; while it starts, the shim makes this process's
	// connections wait for such locks instead of failing with
	// SQLITE_BUSY_RECOVERY (lsShmLockBusy), so it need not wait for them
	// to build the wal-index first (an owner that never reads would wait
	// forever).
	// Read transaction first, then hold back this process's checkpoint
	// writes: the other way round, a connection closing (which checkpoints
	// under an EXCLUSIVE lock) waits for the snapshot while the reader
	// waits for its lock.
	release, err := db.host.HoldReadTxn()
	if err != nil {
		return err
	}
	defer release()
	db.host.BeginSnapshot()
	defer db.host.EndSnapshot()
	// Database writes in flight have ended (BeginSnapshot waited): every
	// write and gate timeout counted by now is in the state read below.
	covered := db.merge(db.host.Events())

	db.fol.Unfollow()
	db.changeKnown = false // linked again below, or by the next step that reads to the wal-index
	// The wal-index before the state is read: a commit after it is in
	// the snapshot or not, and either way the change counter moved past
	// this (a later step snapshots again rather than miss it).
	idx0, idxOK := db.host.WALIndex()
	raw := db.host.Events()
	base := db.merge(raw).Restarts - (raw.Restarts - raw.RestartsDone) // before the header: see adopt
	hdr, st, err := db.fol.CheckHeader()
	if err != nil {
		return err
	}
	var walTxns []Txn // the WAL's transactions, kept for a resume
	if st == WALSameGen || st == WALNewGeneration {
		db.fol.Follow(hdr)
		n, limit, err := db.bounds()
		if err != nil {
			return err
		}
		for {
			txns, err := db.fol.ReadTxns(maxBatchBytes, n, limit)
			if err != nil {
				return err
			}
			if len(txns) == 0 {
				break
			}
			if !db.rep.Initialized() {
				walTxns = append(walTxns, txns...)
			}
		}
		db.linkCaptured()
	} else if idxOK && idx0.MxFrame == 0 {
		// No WAL frame: the database file holds every commit counted.
		db.capChange, db.changeKnown = idx0.Change, true
	}
	db.genRestarts = base

	f, err := db.host.OpenDBFile()
	if err != nil {
		return fmt.Errorf("open db file: %w", err)
	}
	defer f.Close()
	pageSize, commit, err := db.stateSize(f)
	if err != nil || commit == 0 {
		return err // an empty database: wait for its first commit
	}
	read := func(pgno uint32, buf []byte) error {
		if off, ok := db.fol.Lookup(pgno); ok {
			_, err := db.fol.ReadAt(buf, off)
			return err
		}
		n, err := f.ReadAt(buf, int64(pgno-1)*int64(pageSize))
		if errors.Is(err, io.EOF) {
			clear(buf[n:]) // past the end of the file: never written
			return nil
		}
		return err
	}
	if !db.needSnapshot && !db.rep.Initialized() {
		ok, err := db.resume(f, hdr, pageSize, walTxns)
		if ok {
			db.covered = &covered
		}
		if err != nil || ok {
			return err
		}
		if pos := db.rep.Pos(); pos.TXID > 0 {
			// A whole copy of the database: say why.
			why := fmt.Sprintf("the database and its WAL no longer hold the state the spool or replica ends at (TXID %d): checkpointed past it before the last process ended", pos.TXID)
			if pos.PostApplyChecksum == 0 {
				// Unknown, not necessarily absent: the replica's last file
				// may have none (Litestream writes none), or the replica
				// moved (another database's files; found by an attack).
				why = fmt.Sprintf("the checksum of the state the replica ends at (TXID %d) is unknown, so the database cannot be matched against it: the replica's last file has none (files written without checksums, as Litestream writes them) or the replica is not where this database left it", pos.TXID)
			}
			db.logger.Warn("snapshot needed", "reason", why)
		}
	}
	txid, err := db.rep.Snapshot(pageSize, commit, read, db.verifyGeneration, time.Now())
	if err != nil {
		return err
	}
	db.needSnapshot = false
	db.covered = &covered
	db.snapshots.Add(1)
	db.logger.Info("snapshot", "txid", txid, "pages", commit)
	return nil
}

// resume tries to continue the chain of the spool (or replica) without a
// snapshot: it looks for the last spooled position among the states the
// database went through since, the database file alone and then after
// each transaction in the WAL (txns, read to its end). A process that
// opens and writes at once, or takes over from an owner that was killed,
// finds the spool's position a few transactions back in the WAL: the
// follower is set back there, and the transactions after it ship as
// history on the next step.
func (db *DB) resume(f DBFile, hdr WALHeader, pageSize uint32, txns []Txn) (bool, error) {
	basePageSize, baseCommit, err := headerSize(f)
	if err != nil {
		return false, err
	}
	if baseCommit > 0 && basePageSize != pageSize {
		txns = nil // the WAL was written with another page size: only its end can match
		baseCommit = 0
	}
	readBase := func(pgno uint32, buf []byte) error {
		n, err := f.ReadAt(buf, int64(pgno-1)*int64(pageSize))
		if errors.Is(err, io.EOF) {
			clear(buf[n:])
			return nil
		}
		return err
	}
	steps := make([]replicator.Step, len(txns))
	for i, t := range txns {
		pgnos := make([]uint32, 0, len(t.Pages))
		for pgno := range t.Pages {
			pgnos = append(pgnos, pgno)
		}
		pages := t.Pages
		steps[i] = replicator.Step{Commit: t.Commit, Pgnos: pgnos, Read: func(pgno uint32, buf []byte) error {
			_, err := db.fol.ReadAt(buf, pages[pgno])
			return err
		}}
	}
	i, err := db.rep.ReconcileSteps(pageSize, baseCommit, readBase, steps, db.verifyGeneration)
	if err != nil || i < 0 {
		return false, err
	}
	if i < len(txns) {
		// Back to the boundary the spool ends at; the step follows the
		// rest.
		db.changeKnown = false // linked again once the step has read to the wal-index
		db.fol.Follow(hdr)
		if i > 0 {
			end := txns[i-1].End
			frames := uint32((end - WALHeaderSize) / hdr.FrameSize())
			for db.fol.Offset() < end {
				got, err := db.fol.ReadTxns(maxBatchBytes, frames, frames)
				if err != nil {
					return false, err
				}
				if len(got) == 0 {
					return false, fmt.Errorf("resume: WAL ends at %d before the spool's position at %d", db.fol.Offset(), end)
				}
			}
		}
	}
	db.logger.Info("resumed", "txid", db.rep.Pos().TXID, "wal_txns_after", len(txns)-i)
	return true, nil
}

// stateSize returns the page size and page count of the state under
// snapshot: the WAL's last commit if it has one, else the database header.
func (db *DB) stateSize(f DBFile) (uint32, uint32, error) {
	if db.fol.Following() && db.fol.Commit() > 0 {
		return db.fol.Header().PageSize, db.fol.Commit(), nil
	}
	return headerSize(f)
}

// headerSize returns the page size and page count the database file's
// header gives (0, 0 for an empty file).
func headerSize(f DBFile) (uint32, uint32, error) {
	b := make([]byte, 100)
	if _, err := f.ReadAt(b, 0); errors.Is(err, io.EOF) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("read db header: %w", err)
	}
	pageSize := uint32(binary.BigEndian.Uint16(b[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if !ltx.IsValidPageSize(pageSize) {
		return 0, 0, fmt.Errorf("db header: invalid page size %d", pageSize)
	}
	size, err := f.Size()
	if err != nil {
		return 0, 0, fmt.Errorf("db size: %w", err)
	}
	commit := uint32(size / int64(pageSize))
	// The in-header size is valid when the change counter matches
	// version-valid-for (fileformat2.html#in_header_database_size).
	if n := binary.BigEndian.Uint32(b[28:]); n > 0 && binary.BigEndian.Uint32(b[24:]) == binary.BigEndian.Uint32(b[92:]) {
		commit = n
	}
	return pageSize, commit, nil
}
