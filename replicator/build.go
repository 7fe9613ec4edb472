package replicator

import (
	"fmt"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// Building LTX files into the spool: a snapshot of the whole state, or
// the pages a run of transactions changed.

// scan reads every page of the state and returns its checksum table.
func scan(pageSize, commit uint32, read PageReader) (*pageChecksums, error) {
	c := &pageChecksums{pageSize: pageSize, commit: commit, crcs: make([]ltx.Checksum, commit)}
	buf := make([]byte, pageSize)
	lock := ltx.LockPgno(pageSize)
	h := ltx.NewHasher()
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			continue
		}
		if err := read(pgno, buf); err != nil {
			return nil, fmt.Errorf("read page %d: %w", pgno, err)
		}
		c.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
	}
	return c, nil
}

// Snapshot writes the whole state as a snapshot (MinTXID 1) at the snapshot
// level with the next TXID, and makes it the base state.
func (r *Replicator) Snapshot(pageSize, commit uint32, read PageReader, verify func() error, ts time.Time) (ltx.TXID, error) {
	if commit == 0 {
		return 0, fmt.Errorf("snapshot: empty database")
	}
	txid := r.Pos().TXID + 1
	r.broken.Store(false)
	c := &pageChecksums{pageSize: pageSize, commit: commit, crcs: make([]ltx.Checksum, commit)}
	hdr := ltx.Header{
		Version:   ltx.Version,
		Flags:     r.headerFlags(),
		PageSize:  pageSize,
		Commit:    commit,
		MinTXID:   1,
		MaxTXID:   txid,
		Timestamp: ts.UnixMilli(),
	}
	lock := ltx.LockPgno(pageSize)
	pgnos := func(yield func(uint32) bool) {
		for pgno := uint32(1); pgno <= commit; pgno++ {
			if pgno != lock && !yield(pgno) {
				return
			}
		}
	}
	e, err := r.write(replica.SnapshotLevel, hdr, pgnos, read, verify, c)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	r.crcs = c
	r.dbBytes.Store(int64(commit) * int64(pageSize))
	r.added(e)
	r.logger.Info("snapshot spooled", "txid", txid, "pages", commit, "bytes", e.Size)
	return txid, nil
}

// Append spools n consecutive committed transactions as one LTX file at
// level 0 with TXIDs pos+1..pos+n. pgnos lists the pages they changed in
// ascending order (pages past commit are skipped); commit is the db size
// after the last of them.
func (r *Replicator) Append(n int, pageSize, commit uint32, pgnos []uint32, read PageReader, verify func() error, ts time.Time) (ltx.TXID, error) {
	if !r.Initialized() {
		return 0, ErrNotInitialized
	}
	if r.crcs.pageSize != pageSize {
		return 0, ErrPageSizeChanged
	}
	pos := r.Pos()
	hdr := ltx.Header{
		Version:          ltx.Version,
		Flags:            r.headerFlags(),
		PageSize:         pageSize,
		Commit:           commit,
		MinTXID:          pos.TXID + 1,
		MaxTXID:          pos.TXID + ltx.TXID(n),
		Timestamp:        ts.UnixMilli(),
		PreApplyChecksum: pos.PostApplyChecksum,
	}
	if r.opts.NoChecksum {
		hdr.PreApplyChecksum = 0
	}
	lock := ltx.LockPgno(pageSize)
	seq := func(yield func(uint32) bool) {
		for _, pgno := range pgnos {
			if pgno <= commit && pgno != lock && !yield(pgno) {
				return
			}
		}
	}
	d := newDelta(r.crcs, commit)
	e, err := r.write(0, hdr, seq, read, verify, d)
	if err != nil {
		return 0, err
	}
	d.apply()
	r.dbBytes.Store(int64(commit) * int64(pageSize))
	r.added(e)
	return hdr.MaxTXID, nil
}

func (r *Replicator) headerFlags() uint32 {
	if r.opts.NoChecksum {
		return ltx.HeaderFlagNoChecksum
	}
	return 0
}

// checksummer receives the checksum of every page written.
type checksummer interface {
	set(pgno uint32, crc ltx.Checksum)
	Checksum() ltx.Checksum
}

// write encodes one LTX file into the spool, passing every page's checksum
// to c; the post-apply checksum is c's afterwards. verify, if not nil, runs
// once every page was read: an error discards the file (the source changed
// under the reader).
func (r *Replicator) write(level int, hdr ltx.Header, pgnos func(func(uint32) bool), read PageReader, verify func() error, c checksummer) (*spoolEntry, error) {
	rw, err := r.spool.begin()
	if err != nil {
		return nil, err
	}
	enc, err := r.encs.get(rw)
	if err != nil {
		rw.abort()
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		rw.abort()
		return nil, fmt.Errorf("encode header: %w", err)
	}
	buf := r.encs.pageBuf(hdr.PageSize)
	h := ltx.NewHasher()
	for pgno := range pgnos {
		if err = read(pgno, buf); err != nil {
			err = fmt.Errorf("read page %d: %w", pgno, err)
			break
		}
		if err = enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
			err = fmt.Errorf("encode page %d: %w", pgno, err)
			break
		}
		c.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
	}
	if err == nil && verify != nil {
		err = verify()
	}
	if err != nil {
		rw.abort()
		return nil, err
	}
	if !hdr.NoChecksum() {
		enc.SetPostApplyChecksum(c.Checksum())
	}
	if err := enc.Close(); err != nil {
		rw.abort()
		return nil, fmt.Errorf("close encoder: %w", err)
	}
	if err := r.encs.flush(); err != nil {
		rw.abort()
		return nil, fmt.Errorf("write spool record: %w", err)
	}
	return rw.finish(level, hdr.MinTXID, hdr.MaxTXID, c.Checksum(), enc.N(), time.UnixMilli(hdr.Timestamp))
}

// added queues a written file for the committer. The data is out of the
// WAL (in the page cache), which is all the WAL-reset gate needs; the
// fsync happens off the capture path.
func (r *Replicator) added(e *spoolEntry) {
	stale := false
	r.locked(func() {
		if stale = e.MaxTXID <= r.pos.TXID; stale {
			return
		}
		e.epoch = r.epoch
		r.queue = append(r.queue, e)
		r.pos = ltx.Pos{TXID: e.MaxTXID, PostApplyChecksum: e.Post}
		r.notifyLocked()
	})
	if stale {
		// Built on a position confirm has since moved past: its TXIDs
		// are the replica's already. A snapshot restarts the chain.
		r.spool.release(e)
		r.breakChain("a captured file was built on a position the replica had moved past; a snapshot will follow", nil)
		return
	}
	poke(r.commitWake)
}
