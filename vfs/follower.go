package vfs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"
)

// WALState says what Follower.CheckHeader found.
type WALState int

// WAL states.
const (
	WALMissing       WALState = iota // no -wal file
	WALEmpty                         // file without a valid header (new or truncated)
	WALSameGen                       // the generation being followed
	WALNewGeneration                 // a header with other salts: restarted or replaced
)

// Txn is one committed transaction found in the WAL.
type Txn struct {
	Pages  map[uint32]int64 // pgno → offset of the page data of its last frame
	Commit uint32           // db size in pages after the transaction
	Start  int64            // offset of its first frame
	End    int64            // offset just past its commit frame
}

// Follower reads committed transactions from a WAL file by path. It keeps
// its own descriptor: SQLite takes no POSIX locks on the -wal file, so
// opening and closing it cannot disturb the host's locks.
type Follower struct {
	path string
	f    *os.File
	ino  uint64

	hdr       WALHeader
	hdrIno    uint64 // inode of the file hdr was read from
	following bool
	offset    int64  // next frame offset; always a commit boundary
	s1, s2    uint32 // checksum chain at offset
	commit    uint32 // db size after the last commit in this generation; 0 if none
	index     map[uint32]int64
	buf       []byte
}

// NewFollower returns a follower of the WAL at path.
func NewFollower(path string) *Follower {
	return &Follower{path: path, index: make(map[uint32]int64)}
}

// Close closes the WAL descriptor.
func (f *Follower) Close() error {
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}

func (f *Follower) open() (bool, error) {
	st, err := os.Stat(f.path)
	if errors.Is(err, os.ErrNotExist) {
		_ = f.Close()
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("stat wal: %w", err)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	if f.f != nil && ino == f.ino {
		return true, nil
	}
	_ = f.Close()
	fh, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("open wal: %w", err)
	}
	f.f, f.ino = fh, ino
	return true, nil
}

// CheckHeader reads the WAL header and compares it with the generation
// being followed.
func (f *Follower) CheckHeader() (WALHeader, WALState, error) {
	ok, err := f.open()
	if err != nil || !ok {
		return WALHeader{}, WALMissing, err
	}
	b := make([]byte, WALHeaderSize)
	if _, err := f.f.ReadAt(b, 0); errors.Is(err, io.EOF) {
		return WALHeader{}, WALEmpty, nil
	} else if err != nil {
		return WALHeader{}, WALEmpty, fmt.Errorf("read wal header: %w", err)
	}
	hdr, err := ParseWALHeader(b)
	if err != nil {
		return hdr, WALEmpty, nil
	}
	if f.following && hdr.Salt1 == f.hdr.Salt1 && hdr.Salt2 == f.hdr.Salt2 && hdr.PageSize == f.hdr.PageSize {
		return hdr, WALSameGen, nil
	}
	return hdr, WALNewGeneration, nil
}

// Follow starts following the generation of hdr from its first frame.
func (f *Follower) Follow(hdr WALHeader) {
	f.hdr, f.hdrIno = hdr, f.ino
	f.following = true
	f.offset = WALHeaderSize
	f.s1, f.s2 = hdr.Checksum1, hdr.Checksum2
	f.commit = 0
	clear(f.index)
}

// Succeeds reports whether hdr, read from the current file, can be the
// generation after the one followed, with counted resets let through the
// gates since it was adopted. In the same file a WAL restart
// (walRestartHdr) sets salt-1 to the previous salt-1 plus one and
// increments the checkpoint sequence; each checkpoint that restarts
// does so, even of an empty WAL (two wal_checkpoint(TRUNCATE) in a row
// add two), so salt-1 or the sequence may move by up to counted. A jump
// past that means a generation was missed. The sequence is kept by each
// connection from its own count, so either one moving suffices; a header
// written after a truncation by a connection that never restarted the WAL
// has random salts and proves nothing. In a new file (the WAL was deleted
// and created again) neither proves anything: it reports true.
func (f *Follower) Succeeds(hdr WALHeader, counted uint64) bool {
	if f.hdrIno == 0 || f.ino != f.hdrIno {
		return true
	}
	within := func(d uint32) bool { return d >= 1 && uint64(d) <= max(counted, 1) }
	return within(hdr.Salt1-f.hdr.Salt1) || within(hdr.CkptSeq-f.hdr.CkptSeq)
}

// CountCommits returns how many transactions frames 1..mx of the file
// hold for hdr's generation. The caller knows from SQLite's wal-index that
// those frames are committed: they are taken as ReadTxns takes trusted
// frames, without the checksum chain.
func (f *Follower) CountCommits(hdr WALHeader, mx uint32) (uint32, error) {
	return f.countTxns(hdr, mx, mx)
}

// ChainCommits returns how many transactions of hdr's generation the file
// holds by the salts and the checksum chain alone.
func (f *Follower) ChainCommits(hdr WALHeader) (uint32, error) {
	return f.countTxns(hdr, 0, NoLimit)
}

// countTxns reads hdr's generation from its first frame as ReadTxns would
// (trusted, limit), leaving the follower's own position as it is, and
// returns how many transactions it found.
func (f *Follower) countTxns(hdr WALHeader, trusted, limit uint32) (uint32, error) {
	if f.f == nil {
		return 0, fmt.Errorf("read wal: %w", os.ErrClosed)
	}
	tmp := &Follower{path: f.path, f: f.f, ino: f.ino, index: make(map[uint32]int64)}
	tmp.Follow(hdr)
	txns, err := tmp.ReadTxns(math.MaxInt64, trusted, limit)
	return uint32(len(txns)), err
}

// Unfollow forgets the generation being followed.
func (f *Follower) Unfollow() {
	f.following = false
	f.commit = 0
	clear(f.index)
}

// Following reports whether a generation is being followed.
func (f *Follower) Following() bool { return f.following }

// Header returns the header of the generation being followed.
func (f *Follower) Header() WALHeader { return f.hdr }

// Offset returns the offset just past the last commit read.
func (f *Follower) Offset() int64 { return f.offset }

// Commit returns the db size in pages after the last commit read in this
// generation, or 0 if the generation has no commit yet.
func (f *Follower) Commit() uint32 { return f.commit }

// Lookup returns the offset of the page data of pgno's last committed
// frame in this generation.
func (f *Follower) Lookup(pgno uint32) (int64, bool) {
	off, ok := f.index[pgno]
	return off, ok
}

// ReadAt reads WAL bytes, e.g. page data at an offset from a Txn.
func (f *Follower) ReadAt(b []byte, off int64) (int, error) {
	if f.f == nil {
		return 0, fmt.Errorf("read wal: %w", os.ErrClosed)
	}
	return f.f.ReadAt(b, off)
}

// NoLimit is ReadTxns' limit that reads to the end of the file.
const NoLimit = ^uint32(0)

// Frames returns how many whole frames of the followed generation's size
// the WAL file holds now (0 if it is not open).
func (f *Follower) Frames() (uint32, error) {
	if !f.following || f.f == nil {
		return 0, nil
	}
	st, err := f.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat wal: %w", err)
	}
	if st.Size() <= WALHeaderSize {
		return 0, nil
	}
	return uint32((st.Size() - WALHeaderSize) / f.hdr.FrameSize()), nil
}

// ReadTxns reads the committed transactions after the current offset.
// Frames are accepted only while their salts match and the checksum chain
// holds; a transaction is returned only once its commit frame is read, so
// frames of a transaction still being written (or rolled back) are never
// returned. It stops at the first commit boundary past maxBytes of frames,
// and reads no frame past frame limit (NoLimit: none): a caller bounds a
// step by what the WAL held when it started, so a step does not chase a
// busy writer in a long run of tiny reads.
//
// Frames 1..trusted are known committed from SQLite's wal-index (0: none):
// they are accepted without the salt and checksum check, and the chain
// continues from the checksum stored in each, as SQLite's does. SQLite
// 3.40 can leave committed frames with zeroed salts and checksums behind
// (ROLLBACK TO after a cache spill); its readers go by the wal-index, and
// so must we. With limit == trusted (the wal-index is live and of this
// generation, so no frame past it is committed) a quiet WAL costs no read
// at all.
func (f *Follower) ReadTxns(maxBytes int64, trusted, limit uint32) ([]Txn, error) {
	if !f.following || f.f == nil {
		return nil, nil
	}
	frameSize := f.hdr.FrameSize()
	const chunkFrames = 64
	if len(f.buf) < int(frameSize)*chunkFrames {
		f.buf = make([]byte, int(frameSize)*chunkFrames)
	}
	var txns []Txn
	cur := Txn{Pages: make(map[uint32]int64), Start: f.offset}
	start, off, s1, s2 := f.offset, f.offset, f.s1, f.s2
	end := int64(-1) // read limit
	if limit != NoLimit {
		end = WALHeaderSize + int64(limit)*frameSize
	}
	be := f.hdr.BigEndian()
	for {
		buf := f.buf
		if end >= 0 {
			if off >= end {
				break
			}
			buf = buf[:min(int64(len(buf)), end-off)]
		}
		n, err := f.f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return txns, fmt.Errorf("read wal frames at %d: %w", off, err)
		}
		nFrames := n / int(frameSize)
		if nFrames == 0 {
			break
		}
		valid := true
		for i := 0; i < nFrames; i++ {
			b := f.buf[int64(i)*frameSize : int64(i+1)*frameSize]
			fh := ParseWALFrameHeader(b)
			if frameNo := uint32((off-WALHeaderSize)/frameSize) + 1; frameNo <= trusted && fh.Pgno != 0 {
				s1, s2 = fh.Checksum1, fh.Checksum2
			} else {
				if fh.Salt1 != f.hdr.Salt1 || fh.Salt2 != f.hdr.Salt2 || fh.Pgno == 0 {
					valid = false
					break
				}
				s1, s2 = WALChecksum(be, s1, s2, b[:8])
				s1, s2 = WALChecksum(be, s1, s2, b[WALFrameHeaderSize:])
				if s1 != fh.Checksum1 || s2 != fh.Checksum2 {
					valid = false
					break
				}
			}
			cur.Pages[fh.Pgno] = off + WALFrameHeaderSize
			off += frameSize
			if fh.Commit != 0 {
				cur.Commit, cur.End = fh.Commit, off
				for pgno, o := range cur.Pages {
					f.index[pgno] = o
				}
				txns = append(txns, cur)
				f.offset, f.s1, f.s2, f.commit = off, s1, s2, fh.Commit
				cur = Txn{Pages: make(map[uint32]int64), Start: off}
				if off-start >= maxBytes {
					return txns, nil
				}
			}
		}
		if !valid || n < len(buf) {
			break
		}
	}
	return txns, nil
}
