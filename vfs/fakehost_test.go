package vfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/restore"
)

// fakeHost plays the C shim for one database: the test writes real WAL
// bytes and database pages, and scripts the events the shim would report
// (announced commits, resets let through, gate timeouts, exclusive-mode
// writes). It lets every branch of the capture state machine run without
// cgo.
type fakeHost struct {
	dbPath string

	mu       sync.Mutex
	cond     *sync.Cond
	ev       Events
	ver      uint64
	urgent   uint64
	mx       uint32 // live wal-index
	s1, s2   uint32
	idxOK    bool
	chg      uint32 // its change counter: bumped by every commit
	attached bool
	acks     int
	openErr  error // OpenDBFile fails with it
	opens    int   // OpenDBFile calls
}

var _ Host = (*fakeHost)(nil)

func newFakeHost(dbPath string) *fakeHost {
	h := &fakeHost{dbPath: dbPath}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *fakeHost) Wait(seen uint64, timeout time.Duration) (uint64, Events) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var timer *time.Timer
	expired := false
	if timeout >= 0 {
		timer = time.AfterFunc(timeout, func() {
			h.mu.Lock()
			expired = true
			h.cond.Broadcast()
			h.mu.Unlock()
		})
		defer timer.Stop()
	}
	for h.ver == seen && h.ev.GateWaiters == 0 && !h.ev.Shutdown && !expired {
		h.cond.Wait()
	}
	return h.ver, h.ev
}

func (h *fakeHost) WaitGate(timeout time.Duration) Events {
	h.mu.Lock()
	u := h.urgent
	h.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		if h.urgent != u || h.ev.Shutdown || h.ev.GateWaiters > 0 {
			h.mu.Unlock()
			break
		}
		h.mu.Unlock()
		time.Sleep(time.Millisecond) // poll interval
	}
	return h.Events()
}

func (h *fakeHost) Poke() {
	h.mu.Lock()
	h.urgent++
	h.ver++
	h.cond.Broadcast()
	h.mu.Unlock()
}

func (h *fakeHost) Notify() { h.update(func(*Events) {}) }

func (h *fakeHost) ShareState(unsafe.Pointer) {}

func (h *fakeHost) WALIndex() (WALIndex, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return WALIndex{MxFrame: h.mx, Salt1: h.s1, Salt2: h.s2, Change: h.chg}, h.idxOK
}

func (h *fakeHost) Events() Events {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ev
}

func (h *fakeHost) Ack(seq uint64, _, _, _ uint32) {
	h.mu.Lock()
	if seq > h.ev.Acked {
		h.ev.Acked = seq
	}
	h.acks++
	h.mu.Unlock()
}

func (h *fakeHost) BeginSnapshot()               {}
func (h *fakeHost) EndSnapshot()                 {}
func (h *fakeHost) HoldReadTxn() (func(), error) { return func() {}, nil }
func (h *fakeHost) SetAttached(b bool)           { h.mu.Lock(); h.attached = b; h.mu.Unlock() }
func (h *fakeHost) OpenDBFile() (DBFile, error) {
	h.mu.Lock()
	h.opens++
	err := h.openErr
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return openFakeDBFile(h.dbPath)
}
func (h *fakeHost) update(fn func(ev *Events)) {
	h.mu.Lock()
	fn(&h.ev)
	h.ver++
	h.cond.Broadcast()
	h.mu.Unlock()
}
func (h *fakeHost) setIndex(mx, s1, s2 uint32) {
	h.mu.Lock()
	h.mx, h.s1, h.s2, h.idxOK = mx, s1, s2, true
	h.mu.Unlock()
}

// dropIndex makes WALIndex report no mapping: the process has not read.
func (h *fakeHost) dropIndex() {
	h.mu.Lock()
	h.idxOK = false
	h.mu.Unlock()
}
func (h *fakeHost) shutdown()         { h.update(func(ev *Events) { ev.Shutdown = true }) }
func (h *fakeHost) attachedNow() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.attached }
func (h *fakeHost) gateTimeout()      { h.update(func(ev *Events) { ev.GateTimeouts++ }) }
func (h *fakeHost) exclusiveWrite()   { h.update(func(ev *Events) { ev.ExclusiveWrites++ }) }
func (h *fakeHost) reset()            { h.update(func(ev *Events) { ev.Restarts++; ev.RestartsDone++ }) }
func (h *fakeHost) open(conns, wals int) {
	h.update(func(ev *Events) { ev.Conns, ev.WALOpen = conns, wals })
}
func (h *fakeHost) commitAnnounced(mx, s1, s2 uint32) {
	h.setIndex(mx, s1, s2)
	h.update(func(ev *Events) { ev.Announced++; ev.MxFrame, ev.Salt1, ev.Salt2 = mx, s1, s2 })
}

type fakeDBFile struct{ f *os.File }

func openFakeDBFile(path string) (DBFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fakeDBFile{}, nil
	}
	return fakeDBFile{f}, err
}

func (d fakeDBFile) ReadAt(b []byte, off int64) (int, error) {
	if d.f == nil {
		return 0, io.EOF
	}
	return d.f.ReadAt(b, off)
}

func (d fakeDBFile) Size() (int64, error) {
	if d.f == nil {
		return 0, nil
	}
	st, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (d fakeDBFile) Close() error {
	if d.f == nil {
		return nil
	}
	return d.f.Close()
}

// fakeDB is a database the test writes the way SQLite would: a database
// file (pages 1..n, page 1 with a WAL-mode header) and a WAL of frames.
type fakeDB struct {
	t        *testing.T
	dir      string
	path     string
	pageSize uint32
	pages    map[uint32]byte // the committed state: pgno → fill byte
	size     uint32          // committed db size in pages
	w        *walWriter
	frames   uint32
	host     *fakeHost
	db       *DB
	cancel   context.CancelFunc
	client   replica.Client // nil: the directory replica under dir
	lost     uint32         // commits of a generation no step saw: the next restartBy adds them to the wal-index change counter
}

const fakePageSize = 512

func newFakeDB(t *testing.T) *fakeDB {
	t.Helper()
	dir := t.TempDir()
	f := &fakeDB{t: t, dir: dir, path: filepath.Join(dir, "app.db"), pageSize: fakePageSize, pages: map[uint32]byte{}}
	f.writeDBFile(map[uint32]byte{1: 1, 2: 2, 3: 3}, 3)
	f.w = newWALWriter(fakePageSize, 100, 7)
	f.w.header(0)
	f.writeWAL()
	f.host = newFakeHost(f.path)
	f.host.setIndex(0, 100, 7)
	f.host.open(1, 1)
	return f
}

// writeDBFile writes the database file with the given pages (page 1 also
// gets a WAL-mode header) and makes it the committed state.
func (f *fakeDB) writeDBFile(pages map[uint32]byte, size uint32) {
	f.t.Helper()
	buf := make([]byte, int(size)*fakePageSize)
	for pgno := uint32(1); pgno <= size; pgno++ {
		copy(buf[int(pgno-1)*fakePageSize:], bytes.Repeat([]byte{pages[pgno]}, fakePageSize))
		f.pages[pgno] = pages[pgno]
	}
	copy(buf, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(buf[16:], fakePageSize)
	buf[18], buf[19] = 2, 2
	binary.BigEndian.PutUint32(buf[24:], 1)
	binary.BigEndian.PutUint32(buf[28:], size)
	binary.BigEndian.PutUint32(buf[92:], 1)
	f.size = size
	if err := os.WriteFile(f.path, buf, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// writeWAL writes the WAL in place, as SQLite does: never truncated, a
// restart overwrites it from the start and leaves stale frames past the
// new ones (their salts no longer match).
func (f *fakeDB) writeWAL() {
	f.t.Helper()
	fh, err := os.OpenFile(f.path+"-wal", os.O_RDWR|os.O_CREATE, 0o644)
	if err == nil {
		_, err = fh.WriteAt(f.w.buf.Bytes(), 0)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// image is the committed state as a restore must produce it.
func (f *fakeDB) image() []byte {
	buf := make([]byte, int(f.size)*fakePageSize)
	for pgno := uint32(1); pgno <= f.size; pgno++ {
		copy(buf[int(pgno-1)*fakePageSize:], bytes.Repeat([]byte{f.pages[pgno]}, fakePageSize))
	}
	hdr := make([]byte, 100)
	copy(hdr, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(hdr[16:], fakePageSize)
	hdr[18], hdr[19] = 2, 2
	binary.BigEndian.PutUint32(hdr[24:], 1)
	binary.BigEndian.PutUint32(hdr[28:], f.size)
	binary.BigEndian.PutUint32(hdr[92:], 1)
	if f.pages[1] == 1 { // page 1 still the database file's: its header is there
		copy(buf, hdr)
	}
	return buf
}

func (f *fakeDB) start() {
	f.t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("VFS_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	client := f.client
	if client == nil {
		client = file.NewClient(filepath.Join(f.dir, "replica"))
	}
	db, err := Open(Config{Path: f.path, Replica: client, Host: f.host, Logger: logger})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.db, f.cancel = db, cancel
	db.Start(ctx)
	f.t.Cleanup(f.stop)
}

func (f *fakeDB) stop() {
	if f.db == nil {
		return
	}
	f.host.shutdown()
	f.cancel()
	_ = f.db.Close()
	f.db = nil
	f.host.mu.Lock()
	f.host.ev.Shutdown = false
	f.host.mu.Unlock()
}

// commit writes one transaction of pages (pgno → fill) to the WAL; size 0
// keeps the database size (it grows to cover the pages).
func (f *fakeDB) commit(pages map[uint32]byte, announce bool) {
	f.t.Helper()
	size := f.size
	var pgnos []uint32
	for pgno := range pages {
		pgnos = append(pgnos, pgno)
		size = max(size, pgno)
	}
	for i, pgno := range pgnos {
		commit := uint32(0)
		if i == len(pgnos)-1 {
			commit = size
		}
		f.w.frame(pgno, commit, pages[pgno])
		f.frames++
		f.pages[pgno] = pages[pgno]
	}
	f.size = size
	f.writeWAL()
	f.host.mu.Lock()
	f.host.chg++
	f.host.mu.Unlock()
	if announce {
		f.host.commitAnnounced(f.frames, f.w.salt1, f.w.salt2)
	} else {
		f.host.setIndex(f.frames, f.w.salt1, f.w.salt2)
	}
}

// breakChain overwrites the checksum of the last frame written, as SQLite
// 3.40 leaves frames after ROLLBACK TO in a transaction that spilled: they
// are committed per the wal-index, but the chain does not hold.
func (f *fakeDB) breakChain() {
	f.t.Helper()
	b := f.w.buf.Bytes()
	last := len(b) - int(fakePageSize) - WALFrameHeaderSize
	binary.BigEndian.PutUint32(b[last+16:], ^binary.BigEndian.Uint32(b[last+16:]))
	f.writeWAL()
}

// commitElsewhere publishes a commit in the shared state as another
// process's shim does (ls_shared_commit and ls_shared_signal): its wal-index
// header then, and a signal.
func (f *fakeDB) commitElsewhere() {
	sh := f.db.sh
	v := sh.u32(offCommitLock).Load() | 1
	sh.u32(offCommitLock).Store(v)
	sh.u32(offCommitSalt1).Store(f.w.salt1)
	sh.u32(offCommitSalt2).Store(f.w.salt2)
	sh.u32(offCommitFrames).Store(f.frames)
	sh.u32(offCommitLock).Store(v + 1)
	sh.signal(false)
}

// restart starts a new WAL generation with salt1 (SQLite uses the old
// salt-1 plus one), as a checkpoint that copied every frame would: the
// database file takes the committed state first. The header's checkpoint
// sequence is the writing connection's own count of restarts (7 here); 0
// is a connection that never restarted the WAL, which SQLite gives random
// salts. counted says whether a gate let it through.
func (f *fakeDB) restart(salt1 uint32, counted bool) { f.restartBy(salt1, 7, counted) }

func (f *fakeDB) restartBy(salt1, ckptSeq uint32, counted bool) {
	f.t.Helper()
	f.writeDBFile(f.pages, f.size)
	if counted {
		f.host.reset()
	}
	f.w.salt1, f.w.salt2 = salt1, f.w.salt2+1
	f.w.header(ckptSeq)
	f.frames = 0
	f.writeWAL()
	f.host.mu.Lock()
	f.host.chg += f.lost // with the new salts, as SQLite's header would
	f.lost = 0
	f.host.mu.Unlock()
	f.host.setIndex(0, f.w.salt1, f.w.salt2)
}

func (f *fakeDB) sync() ltx.TXID {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	txid, err := f.db.Sync(ctx)
	if err != nil {
		f.t.Fatalf("Sync: %v; status %+v", err, f.db.Status())
	}
	return txid
}

// check restores the replica's latest state and compares it with the
// committed state.
func (f *fakeDB) check() {
	f.t.Helper()
	out := filepath.Join(f.t.TempDir(), "restored.db")
	if _, err := restore.Restore(context.Background(), file.NewClient(filepath.Join(f.dir, "replica")), restore.Options{OutputPath: out}); err != nil {
		f.t.Fatalf("restore: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		f.t.Fatal(err)
	}
	want := f.image()
	if len(got) != len(want) {
		f.t.Fatalf("restored %d bytes, want %d", len(got), len(want))
	}
	for pgno := uint32(1); pgno <= f.size; pgno++ {
		off := int(pgno-1) * fakePageSize
		if pgno > 1 && !bytes.Equal(got[off:off+fakePageSize], want[off:off+fakePageSize]) {
			f.t.Fatalf("restored page %d = %#x…, want %#x…", pgno, got[off], want[off])
		}
	}
}

// snapshots counts the snapshot files in the replica.
func (f *fakeDB) snapshots() int {
	f.t.Helper()
	ents, err := os.ReadDir(filepath.Join(f.dir, "replica", "ltx", "9"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		f.t.Fatal(err)
	}
	return len(ents)
}
