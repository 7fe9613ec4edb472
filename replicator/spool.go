package replicator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/fsutil"
	"github.com/litestream-vfs/litestream_vfs/replica"
)

// The spool keeps captured LTX files on local disk until the replica has
// them. Files are appended as records to segment files, <dir>/<id>.seg (id
// %016x, increasing), rather than written one file each: creating and
// deleting a file per transaction costs the filesystem far more than an
// append, and one fdatasync makes a whole batch durable.
//
// A record is a 40-byte header followed by the LTX file:
//
//	magic "LSP1" | level u32 | MinTXID u64 | MaxTXID u64 | post-apply checksum u64 | length u64
//
// all big-endian. A record is valid only if the LTX file decodes and
// verifies; the first invalid record ends a segment (a torn tail from a
// crash) and is cut off on load.
const (
	recordMagic      = "LSP1"
	recordHeaderSize = 40
	maxSegmentBytes  = 16 << 20
	// reclaimActiveBytes is the size past which the segment being written
	// is removed as soon as nothing in it is needed (see release); smaller
	// ones are reused, so light traffic does not create a file per upload.
	reclaimActiveBytes = 4 << 20
)

// spoolEntry is one LTX file in the spool.
type spoolEntry struct {
	Level    int
	MinTXID  ltx.TXID
	MaxTXID  ltx.TXID
	Post     ltx.Checksum // post-apply checksum
	Size     int64        // bytes of the LTX file
	At       time.Time    // when it was captured (the LTX header's timestamp)
	seg      *segment
	off      int64 // offset of the LTX file in the segment
	released bool  // guarded by spool.mu
	epoch    int   // Replicator.epoch when it was captured; guarded by Replicator.mu
}

type segment struct {
	id     uint64
	path   string
	f      *os.File
	size   int64 // bytes of valid records
	live   int   // entries not yet released
	synced bool  // the directory entry is durable
}

type spool struct {
	dir string

	mu      sync.Mutex
	active  *segment
	segs    map[*segment]bool // every segment on disk (Bytes)
	nextID  uint64
	writing bool // a record is being written to active (begin to finish or abort)
}

func (s *spool) segmentPath(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x.seg", id))
}

// load reads every segment, cutting torn tails, and returns the entries in
// upload order. Segments are kept open for reading; new records go to a
// new segment.
func (s *spool) load() ([]*spoolEntry, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	var out []*spoolEntry
	for _, ent := range names {
		name := ent.Name()
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 16, 64)
		if err != nil || !strings.HasSuffix(name, ".seg") {
			continue
		}
		seg, entries, err := s.loadSegment(id)
		if err != nil {
			return nil, err
		}
		if id >= s.nextID {
			s.nextID = id + 1
		}
		if len(entries) == 0 {
			s.mu.Lock()
			s.removeSegment(seg)
			s.mu.Unlock()
			continue
		}
		out = append(out, entries...)
	}
	sortEntries(out)
	return out, nil
}

func (s *spool) loadSegment(id uint64) (*segment, []*spoolEntry, error) {
	path := s.segmentPath(id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open spool segment: %w", err)
	}
	seg := &segment{id: id, path: path, f: f, synced: true}
	s.track(seg)
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("stat spool segment: %w", err)
	}
	var entries []*spoolEntry
	for off := int64(0); off+recordHeaderSize <= st.Size(); {
		e, err := readRecord(f, off, st.Size())
		if err != nil {
			break // torn tail
		}
		e.seg = seg
		seg.live++
		entries = append(entries, e)
		off = e.off + e.Size
		seg.size = off
	}
	if seg.size < st.Size() {
		_ = f.Truncate(seg.size)
	}
	return seg, entries, nil
}

// readRecord reads and verifies the record at off.
func readRecord(f *os.File, off, fileSize int64) (*spoolEntry, error) {
	b := make([]byte, recordHeaderSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, err
	}
	if string(b[:4]) != recordMagic {
		return nil, errors.New("bad record magic")
	}
	e := &spoolEntry{
		Level:   int(binary.BigEndian.Uint32(b[4:])),
		MinTXID: ltx.TXID(binary.BigEndian.Uint64(b[8:])),
		MaxTXID: ltx.TXID(binary.BigEndian.Uint64(b[16:])),
		Post:    ltx.Checksum(binary.BigEndian.Uint64(b[24:])),
		Size:    int64(binary.BigEndian.Uint64(b[32:])),
		off:     off + recordHeaderSize,
	}
	if e.Size <= 0 || e.Size > fileSize-e.off {
		return nil, errors.New("record past end of segment")
	}
	if (e.Level != 0 && e.Level != replica.SnapshotLevel) || e.MinTXID == 0 || e.MinTXID > e.MaxTXID {
		return nil, errors.New("bad record header")
	}
	dec := ltx.NewDecoder(io.NewSectionReader(f, e.off, e.Size))
	if err := dec.Verify(); err != nil {
		return nil, fmt.Errorf("verify record: %w", err)
	}
	hdr := dec.Header()
	e.At = time.UnixMilli(hdr.Timestamp)
	// A file written without checksums (Litestream-compatible mode) keeps
	// the real post-apply checksum only in the record header.
	if hdr.MinTXID != e.MinTXID || hdr.MaxTXID != e.MaxTXID || (!hdr.NoChecksum() && dec.Trailer().PostApplyChecksum != e.Post) {
		return nil, errors.New("record header does not match its ltx file")
	}
	return e, nil
}

// recordWriter appends one record to the active segment.
type recordWriter struct {
	s     *spool
	seg   *segment
	start int64
	w     *io.OffsetWriter
}

// begin starts a record in the active segment, rolling to a new segment
// when the active one is full. Only the capture goroutine writes.
func (s *spool) begin() (*recordWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil || s.active.size >= maxSegmentBytes {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, fmt.Errorf("create spool dir: %w", err)
		}
		id := s.nextID
		s.nextID++
		path := s.segmentPath(id)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("create spool segment: %w", err)
		}
		old := s.active
		s.active = &segment{id: id, path: path, f: f}
		s.trackLocked(s.active)
		if old != nil && old.live == 0 {
			s.removeSegment(old)
		}
	}
	seg := s.active
	s.writing = true
	return &recordWriter{s: s, seg: seg, start: seg.size, w: io.NewOffsetWriter(seg.f, seg.size+recordHeaderSize)}, nil
}

func (rw *recordWriter) Write(p []byte) (int, error) { return rw.w.Write(p) }

// finish writes the record header and returns the entry.
func (rw *recordWriter) finish(level int, minTXID, maxTXID ltx.TXID, post ltx.Checksum, n int64, at time.Time) (*spoolEntry, error) {
	b := make([]byte, recordHeaderSize)
	copy(b, recordMagic)
	binary.BigEndian.PutUint32(b[4:], uint32(level))
	binary.BigEndian.PutUint64(b[8:], uint64(minTXID))
	binary.BigEndian.PutUint64(b[16:], uint64(maxTXID))
	binary.BigEndian.PutUint64(b[24:], uint64(post))
	binary.BigEndian.PutUint64(b[32:], uint64(n))
	if _, err := rw.seg.f.WriteAt(b, rw.start); err != nil {
		rw.abort()
		return nil, fmt.Errorf("write spool record: %w", err)
	}
	rw.s.mu.Lock()
	defer rw.s.mu.Unlock()
	rw.s.writing = false
	rw.seg.size = rw.start + recordHeaderSize + n
	rw.seg.live++
	return &spoolEntry{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Post: post, Size: n, At: at, seg: rw.seg, off: rw.start + recordHeaderSize}, nil
}

// abort drops a record that could not be completed.
func (rw *recordWriter) abort() {
	_ = rw.seg.f.Truncate(rw.start)
	rw.s.mu.Lock()
	rw.s.writing = false
	rw.s.mu.Unlock()
}

// sync makes the given entries durable: one fdatasync per segment, and a
// directory fsync for segments created since the last one.
func (s *spool) sync(entries []*spoolEntry) error {
	done := map[*segment]bool{}
	dirty := false
	for _, e := range entries {
		if done[e.seg] {
			continue
		}
		done[e.seg] = true
		if err := syscall.Fdatasync(int(e.seg.f.Fd())); err != nil {
			return fmt.Errorf("sync spool segment %s: %w", filepath.Base(e.seg.path), err)
		}
		s.mu.Lock()
		if !e.seg.synced {
			e.seg.synced, dirty = true, true
		}
		s.mu.Unlock()
	}
	if dirty {
		if err := fsutil.SyncDir(s.dir); err != nil {
			return fmt.Errorf("sync spool dir: %w", err)
		}
	}
	return nil
}

// reader returns the LTX file of e.
func (s *spool) reader(e *spoolEntry) io.Reader {
	return io.NewSectionReader(e.seg.f, e.off, e.Size)
}

// release says e is no longer needed (shipped or dropped). A segment goes
// once all its entries are released and it is no longer written to. The
// segment being written to goes too if it grew past reclaimActiveBytes
// and no record is being written: after a large transaction shipped its
// space comes back at once (a 292 MB segment stayed until a later commit),
// and the next record starts a new segment.
func (s *spool) release(e *spoolEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.released {
		return
	}
	e.released = true
	e.seg.live--
	switch {
	case e.seg.live > 0:
	case e.seg != s.active:
		s.removeSegment(e.seg)
	case !s.writing && e.seg.size >= reclaimActiveBytes:
		s.removeSegment(e.seg)
		s.active = nil
	}
}

// isReleased reports whether e was released.
func (s *spool) isReleased(e *spoolEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.released
}

// segmentBytes returns the bytes of the segments segs.
func (s *spool) segmentBytes(segs map[*segment]bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.segmentBytesLocked(segs)
}

func (s *spool) segmentBytesLocked(segs map[*segment]bool) int64 {
	var n int64
	for seg := range segs {
		n += seg.size
	}
	return n
}

func (s *spool) removeSegment(seg *segment) {
	_ = seg.f.Close()
	_ = os.Remove(seg.path)
	delete(s.segs, seg)
}

// track registers a segment loaded at open.
func (s *spool) track(seg *segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trackLocked(seg)
}

// trackLocked registers a segment on disk (for Bytes).
func (s *spool) trackLocked(seg *segment) {
	if s.segs == nil {
		s.segs = make(map[*segment]bool)
	}
	s.segs[seg] = true
}

// Bytes returns the bytes of the spool's segments on disk: what is
// waiting for the replica, the local copies kept for compaction, and the
// reusable space of the segment being written.
func (s *spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.segmentBytesLocked(s.segs)
}

// close closes the active segment, removing it if nothing in it is
// waiting for the replica.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return
	}
	if s.active.live == 0 {
		s.removeSegment(s.active)
	} else {
		_ = s.active.f.Close()
		delete(s.segs, s.active)
	}
	s.active = nil
}

func sortEntries(a []*spoolEntry) {
	sort.SliceStable(a, func(i, j int) bool {
		if a[i].MaxTXID != a[j].MaxTXID {
			return a[i].MaxTXID < a[j].MaxTXID
		}
		return a[i].Level > a[j].Level
	})
}

// trailerOf verifies an LTX file and returns its post-apply checksum.
func trailerOf(r io.Reader) (ltx.Checksum, error) {
	dec := ltx.NewDecoder(r)
	if err := dec.Verify(); err != nil {
		return 0, err
	}
	return dec.Trailer().PostApplyChecksum, nil
}
