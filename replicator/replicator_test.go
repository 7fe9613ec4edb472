package replicator

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

// model is an in-memory database the tests change and replicate.
type model struct {
	pageSize uint32
	pages    [][]byte
	rnd      *rand.Rand
}

func newModel(pageSize uint32, n int, seed int64) *model {
	m := &model{pageSize: pageSize, rnd: rand.New(rand.NewSource(seed))}
	for i := 0; i < n; i++ {
		m.pages = append(m.pages, m.randomPage())
	}
	return m
}

func (m *model) randomPage() []byte {
	b := make([]byte, m.pageSize)
	m.rnd.Read(b)
	return b
}

func (m *model) commit() uint32 { return uint32(len(m.pages)) }

func (m *model) read(pgno uint32, buf []byte) error {
	if pgno == 0 || pgno > m.commit() {
		return errors.New("page out of range")
	}
	copy(buf, m.pages[pgno-1])
	return nil
}

// change rewrites the given pages (growing the database as needed) and
// returns them sorted.
func (m *model) change(pgnos ...uint32) []uint32 {
	for _, pgno := range pgnos {
		for m.commit() < pgno {
			m.pages = append(m.pages, m.randomPage())
		}
		m.pages[pgno-1] = m.randomPage()
	}
	return sortedUnique(pgnos)
}

func (m *model) image() []byte {
	var b bytes.Buffer
	for _, p := range m.pages {
		b.Write(p)
	}
	return b.Bytes()
}

func sortedUnique(a []uint32) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, v := range a {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

type harness struct {
	t       *testing.T
	dir     string
	repDir  string
	r       *Replicator
	ctx     context.Context
	restore int
}

func newHarness(t *testing.T, repDir string) *harness {
	t.Helper()
	dir := t.TempDir()
	if repDir == "" {
		repDir = filepath.Join(dir, "replica")
	}
	h := &harness{t: t, dir: dir, repDir: repDir, ctx: context.Background()}
	h.open()
	return h
}

func (h *harness) open() {
	h.t.Helper()
	h.r = New(file.NewClient(h.repDir), Options{
		SpoolDir: filepath.Join(h.dir, "spool"),
		Logger:   slog.New(slog.DiscardHandler),
		RetryMin: time.Millisecond,
		RetryMax: 20 * time.Millisecond,
	})
	if err := h.r.Open(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.r.Start(h.ctx)
	h.t.Cleanup(func() { _ = h.r.Close() })
}

func (h *harness) sync(txid ltx.TXID) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := h.r.WaitReplicated(ctx, txid); err != nil {
		h.t.Fatalf("WaitReplicated(%d): %v; status %+v", txid, err, h.r.Status())
	}
}

// check restores the replica and compares it with m.
func (h *harness) check(m *model, txid ltx.TXID) {
	h.t.Helper()
	h.checkImage(m.image(), txid)
}

// checkImage restores the replica at txid and compares it with want.
func (h *harness) checkImage(want []byte, txid ltx.TXID) {
	h.t.Helper()
	h.restore++
	out := filepath.Join(h.dir, "restore"+string(rune('a'+h.restore))+".db")
	res, err := restore.Restore(h.ctx, file.NewClient(h.repDir), restore.Options{OutputPath: out, TXID: txid})
	if err != nil {
		h.t.Fatalf("restore: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		h.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		h.t.Fatalf("restored image at TXID %d differs (%d vs %d bytes)", txid, len(got), len(want))
	}
	if res.TXID != txid {
		h.t.Fatalf("restored TXID %d, want %d", res.TXID, txid)
	}
}

func TestReplicator(t *testing.T) {
	t.Run("SnapshotAppendShrinkRestore", func(t *testing.T) {
		h := newHarness(t, "")
		m := newModel(512, 10, 1)
		txid, err := h.r.Snapshot(512, m.commit(), m.read, nil, time.Now())
		if err != nil || txid != 1 {
			t.Fatalf("Snapshot()=%d, %v; want 1", txid, err)
		}
		// A single transaction, a merged run of three, a growth and a shrink.
		steps := []struct {
			n      int
			pgnos  []uint32
			shrink uint32
		}{
			{1, []uint32{2, 5}, 0},
			{3, []uint32{1, 9, 3}, 0},
			{1, []uint32{12, 11}, 0}, // grows to 12
			{1, []uint32{1}, 6},      // shrinks to 6
			{2, []uint32{7, 2}, 0},   // grows again
		}
		for i, st := range steps {
			pgnos := m.change(st.pgnos...)
			if st.shrink > 0 {
				m.pages = m.pages[:st.shrink]
			}
			got, err := h.r.Append(st.n, 512, m.commit(), pgnos, m.read, nil, time.Now())
			if err != nil {
				t.Fatalf("step %d: Append: %v", i, err)
			}
			if want := txid + ltx.TXID(st.n); got != want {
				t.Fatalf("step %d: TXID %d, want %d", i, got, want)
			}
			txid = got
			h.sync(txid)
			h.check(m, txid)
		}
		if st := h.r.Status(); st.LocalTXID != txid || st.ReplicatedTXID != txid || st.PendingFiles != 0 || st.ErrorActive {
			t.Fatalf("status %+v", st)
		}
	})

	t.Run("ReopenResumesAndReconciles", func(t *testing.T) {
		h := newHarness(t, "")
		m := newModel(4096, 4, 2)
		if _, err := h.r.Snapshot(4096, m.commit(), m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		pgnos := m.change(3)
		txid, err := h.r.Append(1, 4096, m.commit(), pgnos, m.read, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.sync(txid)
		_ = h.r.Close()

		h.open() // a new process
		if got := h.r.Pos().TXID; got != txid {
			t.Fatalf("Pos().TXID=%d after reopen, want %d", got, txid)
		}
		if h.r.Initialized() {
			t.Fatal("Initialized() before Reconcile")
		}
		other := newModel(4096, 4, 99)
		if ok, err := h.r.Reconcile(4096, other.commit(), other.read, nil); err != nil || ok {
			t.Fatalf("Reconcile(other db)=%v, %v; want false", ok, err)
		}
		if ok, err := h.r.Reconcile(4096, m.commit(), m.read, nil); err != nil || !ok {
			t.Fatalf("Reconcile(same db)=%v, %v; want true", ok, err)
		}
		pgnos = m.change(1, 5)
		txid, err = h.r.Append(1, 4096, m.commit(), pgnos, m.read, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.sync(txid)
		h.check(m, txid)
	})

	t.Run("UnwritableReplicaKeepsSpoolAndDrains", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "replica")
		h := newHarness(t, blocker)
		// A regular file where the replica directory should be: writes
		// fail even for root.
		if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		m := newModel(512, 3, 3)
		if _, err := h.r.Snapshot(512, m.commit(), m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		var txid ltx.TXID
		for i := 0; i < 5; i++ {
			var err error
			pgnos := m.change(uint32(i%3) + 1)
			if txid, err = h.r.Append(1, 512, m.commit(), pgnos, m.read, nil, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for !h.r.Status().ErrorActive {
			if time.Now().After(deadline) {
				t.Fatalf("no error reported: %+v", h.r.Status())
			}
			time.Sleep(time.Millisecond)
		}
		st := h.r.Status()
		if st.ReplicatedTXID != 0 || st.PendingTXNs != int64(txid) || st.LastError == "" {
			t.Fatalf("status during outage %+v", st)
		}
		if err := os.Remove(blocker); err != nil {
			t.Fatal(err)
		}
		h.sync(txid)
		h.check(m, txid)
		if st := h.r.Status(); st.ErrorActive || st.PendingFiles != 0 {
			t.Fatalf("status after recovery %+v", st)
		}
		// The five queued transactions went up as one merged object.
		infos, err := file.NewClient(h.repDir).LTXFiles(h.ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].MinTXID != 2 || infos[0].MaxTXID != txid {
			t.Fatalf("level 0 after recovery: %d files, want one covering 2..%d", len(infos), txid)
		}
	})

	t.Run("LockPageSkipped", func(t *testing.T) {
		// 512-byte pages put the lock page (byte 2^30) at pgno 2097153;
		// a sparse model would be too big, so check the checksum table only.
		c := &pageChecksums{pageSize: 512}
		c.set(1, ltx.ChecksumPage(1, make([]byte, 512)))
		lock := ltx.LockPgno(512)
		if lock != 1<<30/512+1 {
			t.Fatalf("LockPgno=%d", lock)
		}
		d := newDelta(c, 1)
		d.set(1, ltx.ChecksumPage(1, bytes.Repeat([]byte{1}, 512)))
		d.apply()
		want := ltx.ChecksumFlag | ltx.ChecksumPage(1, bytes.Repeat([]byte{1}, 512))
		if c.Checksum() != want {
			t.Fatalf("checksum %s, want %s", c.Checksum(), want)
		}
	})

	t.Run("AppendNeedsBase", func(t *testing.T) {
		h := newHarness(t, "")
		if _, err := h.r.Append(1, 512, 1, []uint32{1}, newModel(512, 1, 4).read, nil, time.Now()); !errors.Is(err, ErrNotInitialized) {
			t.Fatalf("Append without base: %v, want ErrNotInitialized", err)
		}
		m := newModel(512, 2, 5)
		if _, err := h.r.Snapshot(512, m.commit(), m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := h.r.Append(1, 1024, 1, []uint32{1}, m.read, nil, time.Now()); !errors.Is(err, ErrPageSizeChanged) {
			t.Fatalf("Append with other page size: %v, want ErrPageSizeChanged", err)
		}
	})

	t.Run("TornSpoolRecordDropped", func(t *testing.T) {
		h := newHarness(t, "")
		m := newModel(512, 2, 6)
		if _, err := h.r.Snapshot(512, m.commit(), m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := h.r.Close(); err != nil {
			t.Fatal(err)
		}
		h.open()
		if _, err := h.r.Reconcile(512, m.commit(), m.read, nil); err != nil {
			t.Fatal(err)
		}
		pgnos := m.change(1)
		txid, err := h.r.Append(1, 512, m.commit(), pgnos, m.read, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.sync(txid)
		_ = h.r.Close()

		// A crash in the middle of an append leaves a torn record at the
		// end of a segment: it must be cut off, never shipped.
		segs, _ := filepath.Glob(filepath.Join(h.dir, "spool", "*.seg"))
		if len(segs) != 0 {
			t.Fatalf("shipped segments left behind: %v", segs)
		}
		torn := filepath.Join(h.dir, "spool", "00000000000000ff.seg")
		b := make([]byte, recordHeaderSize+30)
		copy(b, recordMagic)
		binary.BigEndian.PutUint64(b[8:], uint64(txid+1))
		binary.BigEndian.PutUint64(b[16:], uint64(txid+1))
		binary.BigEndian.PutUint64(b[32:], 30)
		if err := os.WriteFile(torn, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h.open()
		if got := h.r.Pos().TXID; got != txid {
			t.Fatalf("Pos()=%d, want %d (torn record ignored)", got, txid)
		}
		if _, err := os.Stat(torn); !os.IsNotExist(err) {
			t.Fatalf("empty torn segment still there: %v", err)
		}
	})

	t.Run("SegmentsRollAndGo", func(t *testing.T) {
		h := newHarness(t, "")
		m := newModel(65536, 8, 7)
		txid, err := h.r.Snapshot(65536, m.commit(), m.read, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// 40 transactions of 8 random 64 KiB pages: > 16 MiB of spool.
		for i := 0; i < 40; i++ {
			pgnos := m.change(1, 2, 3, 4, 5, 6, 7, 8)
			if txid, err = h.r.Append(1, 65536, m.commit(), pgnos, m.read, nil, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		h.sync(txid)
		h.check(m, txid)
		segs, _ := filepath.Glob(filepath.Join(h.dir, "spool", "*.seg"))
		// The active one goes too once it is past reclaimActiveBytes.
		if len(segs) > 1 {
			t.Fatalf("segments after everything shipped: %v, want at most the active one", segs)
		}
	})
}

// countingClient counts uploads.
type countingClient struct {
	replica.Client
	mu   sync.Mutex
	puts []time.Time
}

func (c *countingClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	c.mu.Lock()
	c.puts = append(c.puts, time.Now())
	c.mu.Unlock()
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

func TestReplicatorPutRate(t *testing.T) {
	dir := t.TempDir()
	cc := &countingClient{Client: file.NewClient(filepath.Join(dir, "replica"))}
	r := startWith(t, cc, Options{SpoolDir: filepath.Join(dir, "spool"), MaxPutsPerSecond: 5}, false)
	ctx := context.Background()
	m := newModel(512, 4, 8)
	txid, err := r.Snapshot(512, m.commit(), m.read, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 200; i++ {
		pgnos := m.change(uint32(i%4) + 1)
		if txid, err = r.Append(1, 512, m.commit(), pgnos, m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(50 * time.Millisecond) // a steady stream for about half a second
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitReplicated(wctx, txid); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	cc.mu.Lock()
	n := len(cc.puts)
	cc.mu.Unlock()
	// At most one PUT per 200 ms, plus the first one and the last, which
	// WaitReplicated urges past the budget.
	if max := int(elapsed/(200*time.Millisecond)) + 3; n > max {
		t.Fatalf("%d PUTs in %v, want at most %d at 5/s", n, elapsed, max)
	}
	if n < 2 {
		t.Fatalf("%d PUTs: the test did not exercise merging", n)
	}
}

// permanentClient fails every upload with a permanent error.
type permanentClient struct {
	replica.Client
	mu    sync.Mutex
	tries int
}

func (c *permanentClient) WriteLTXFile(context.Context, int, ltx.TXID, ltx.TXID, io.Reader) (*ltx.FileInfo, error) {
	c.mu.Lock()
	c.tries++
	c.mu.Unlock()
	return nil, fmt.Errorf("test: put: %w", replica.ErrPermanent)
}

func TestReplicatorPermanentErrorRetriesSlowly(t *testing.T) {
	dir := t.TempDir()
	pc := &permanentClient{Client: file.NewClient(filepath.Join(dir, "replica"))}
	r := startWith(t, pc, Options{SpoolDir: filepath.Join(dir, "spool"), RetryMin: time.Millisecond, PermanentRetry: time.Hour}, false)
	m := newModel(512, 2, 9)
	if _, err := r.Snapshot(512, m.commit(), m.read, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !r.Status().ErrorActive {
		if time.Now().After(deadline) {
			t.Fatal("no error reported")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // fast retries would be ~100 tries by now
	pc.mu.Lock()
	tries := pc.tries
	pc.mu.Unlock()
	if tries != 1 {
		t.Fatalf("%d tries of a permanently failing upload, want 1 before the slow retry", tries)
	}
	if st := r.Status(); !strings.Contains(st.LastError, "permanent") {
		t.Fatalf("last error %q", st.LastError)
	}
}

func TestReplicatorSpoolOverflow(t *testing.T) {
	dir := t.TempDir()
	repDir := filepath.Join(dir, "replica")
	r := startWith(t, file.NewClient(repDir), Options{
		SpoolDir: filepath.Join(dir, "spool"), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, SpoolMaxBytes: 8 << 10,
	}, false)
	ctx := context.Background()
	m := newModel(512, 4, 10)
	txid, err := r.Snapshot(512, m.commit(), m.read, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; status %+v", what, r.Status())
			}
			time.Sleep(time.Millisecond)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitReplicated(wctx, txid); err != nil {
		t.Fatal(err)
	}

	// The replica goes away; random pages do not compress, so a few dozen
	// transactions pass the 8 KiB bound.
	if err := os.RemoveAll(repDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(repDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40 && r.Initialized(); i++ {
		pgnos := m.change(uint32(i%4) + 1)
		if _, err := r.Append(1, 512, m.commit(), pgnos, m.read, nil, time.Now()); errors.Is(err, ErrNotInitialized) {
			break // the spool overflowed between the check and the append
		} else if err != nil {
			t.Fatal(err)
		}
		waitFor("the committer", func() bool { return r.Status().PendingFiles > 0 || !r.Initialized() })
	}
	waitFor("overflow", func() bool { return r.Status().NeedsSnapshot && !r.Initialized() })
	if st := r.Status(); st.PendingBytes > 8<<10 {
		t.Fatalf("spool holds %d bytes past its 8 KiB bound", st.PendingBytes)
	}
	if _, err := r.Append(1, 512, m.commit(), []uint32{1}, m.read, nil, time.Now()); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Append after overflow: %v, want ErrNotInitialized until a snapshot", err)
	}
	// The state still matches the local position, but what led there was
	// dropped: resuming would leave the replica without it for good.
	if ok, err := r.Reconcile(512, m.commit(), m.read, nil); err != nil || ok {
		t.Fatalf("Reconcile after overflow = %v, %v; want false (a snapshot is owed)", ok, err)
	}

	// The owner answers with a snapshot; once the replica is back it ships.
	txid, err = r.Snapshot(512, m.commit(), m.read, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pgnos := m.change(2)
	if txid, err = r.Append(1, 512, m.commit(), pgnos, m.read, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(repDir); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitReplicated(wctx, txid); err != nil {
		t.Fatalf("%v; status %+v", err, r.Status())
	}
	if st := r.Status(); st.NeedsSnapshot || st.PendingFiles != 0 {
		t.Fatalf("status after recovery %+v", st)
	}
	h := &harness{t: t, dir: dir, repDir: repDir, ctx: ctx}
	h.check(m, txid)
}

func TestJitter(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if got := jitter(time.Second); got < 800*time.Millisecond || got > 1200*time.Millisecond {
			t.Fatalf("jitter(1s)=%v, want within ±20%%", got)
		}
	}
}

// TestReplicatorNoChecksum writes Litestream-compatible files (no
// checksums), restores them, and resumes after a reopen without a snapshot.
func TestReplicatorNoChecksum(t *testing.T) {
	dir := t.TempDir()
	repDir := filepath.Join(dir, "replica")
	open := func() *Replicator {
		r := New(file.NewClient(repDir), Options{
			SpoolDir:   filepath.Join(dir, "spool"),
			Logger:     slog.New(slog.DiscardHandler),
			NoChecksum: true,
		})
		if err := r.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.Start(context.Background())
		return r
	}
	r := open()
	m := newModel(512, 6, 12)
	txid, err := r.Snapshot(512, m.commit(), m.read, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		pgnos := m.change(uint32(i%7) + 1)
		if txid, err = r.Append(1, 512, m.commit(), pgnos, m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitReplicated(ctx, txid); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()

	infos, err := file.NewClient(repDir).LTXFiles(ctx, 0)
	if err != nil || len(infos) == 0 {
		t.Fatalf("level 0: %v, %v", infos, err)
	}
	rc, err := file.NewClient(repDir).OpenLTXFile(ctx, 0, infos[0].MinTXID, infos[0].MaxTXID)
	if err != nil {
		t.Fatal(err)
	}
	hdr, _, err := ltx.PeekHeader(rc)
	rc.Close()
	if err != nil || !hdr.NoChecksum() || hdr.PreApplyChecksum != 0 {
		t.Fatalf("header %+v, %v: want HeaderFlagNoChecksum and no pre-apply checksum", hdr, err)
	}
	h := &harness{t: t, dir: dir, repDir: repDir, ctx: ctx}
	h.check(m, txid)

	r = open()
	defer r.Close()
	if ok, err := r.Reconcile(512, m.commit(), m.read, nil); err != nil || !ok {
		t.Fatalf("Reconcile after reopen = %v, %v; want a match from the saved position", ok, err)
	}
}
