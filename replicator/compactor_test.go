package replicator

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
	"github.com/litestream-vfs/litestream_vfs/restore"
)

// fakeClock is a Clock that moves only when the test says.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
		} else {
			t.ch <- c.now
		}
	}
	c.timers = kept
}

// TestCompactionSimulated drives two simulated hours of commits (one
// every 5 s) through the real replicator, compaction planner and a
// directory replica, with Litestream's default intervals, calling the
// compactor's step after every tick as its goroutine would. Then:
// level-0 files are bounded by l0-retention, each level holds about one
// file per window, the latest restore reads a bounded number of files and
// equals the model, restores to level boundaries equal the model then, a
// TXID whose level-0 file expired is refused, and once everything is
// compacted nothing more is pending (no timer on an idle replica).
func TestCompactionSimulated(t *testing.T) {
	const (
		tick = 5 * time.Second
		span = 2 * time.Hour
	)
	dir := t.TempDir()
	repDir := filepath.Join(dir, "replica")
	clock := &fakeClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	cfg := compact.Config{Intervals: compact.DefaultIntervals, L0Retention: compact.DefaultL0Retention}
	r := New(file.NewClient(repDir), Options{
		SpoolDir:   filepath.Join(dir, "spool"),
		Logger:     slog.New(slog.DiscardHandler),
		RetryMin:   time.Millisecond,
		RetryMax:   20 * time.Millisecond,
		Compaction: cfg,
		Clock:      clock,
	})
	r.manualCompaction = true
	ctx := context.Background()
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	r.Start(ctx)
	t.Cleanup(func() { _ = r.Close() })
	wait := func(txid ltx.TXID) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.WaitReplicated(c, txid); err != nil {
			t.Fatalf("WaitReplicated(%d): %v", txid, err)
		}
	}
	settle := func() {
		t.Helper()
		for i := 0; ; i++ {
			worked, _, err := r.compactStep(ctx)
			if err != nil {
				t.Fatalf("compactStep: %v", err)
			}
			if !worked {
				return
			}
			if i > 1000 {
				t.Fatal("compactStep never settles")
			}
		}
	}

	m := newModel(512, 20, 7)
	images := map[ltx.TXID][32]byte{}
	txid, err := r.Snapshot(512, m.commit(), m.read, nil, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	images[txid] = sha256.Sum256(m.image())
	wait(txid)
	for elapsed := time.Duration(0); elapsed < span; elapsed += tick {
		pgnos := []uint32{uint32(1 + m.rnd.Intn(30))} // grows to 30 pages
		for pg := m.commit() + 1; pg < pgnos[0]; pg++ {
			pgnos = append(pgnos, pg) // a growth writes every new page
		}
		pgnos = m.change(pgnos...)
		if txid, err = r.Append(1, 512, m.commit(), pgnos, m.read, nil, clock.Now()); err != nil {
			t.Fatal(err)
		}
		images[txid] = sha256.Sum256(m.image())
		wait(txid)
		clock.Advance(tick)
		settle()
	}
	lv, _ := r.cat.levels()
	counts := make([]int, len(lv))
	for i := range lv {
		counts[i] = len(lv[i])
	}
	t.Logf("after %v: files by level %v, TXID %d", span, counts, txid)

	// Level 0 keeps at most l0-retention plus one level-1 window of
	// commits; each level about one file per window of its interval.
	if max0 := int((cfg.L0Retention+cfg.Intervals[0])/tick) + 2; counts[0] > max0 {
		t.Errorf("%d level-0 files, want at most %d", counts[0], max0)
	}
	for i, iv := range cfg.Intervals {
		want := int(span / iv)
		if counts[i+1] < want-1 || counts[i+1] > want+1 {
			t.Errorf("level %d: %d files, want %d ± 1 (one per %v window)", i+1, counts[i+1], want, iv)
		}
	}
	listed, err := listLevels(ctx, file.NewClient(repDir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range listed {
		if len(listed[i]) != counts[i] {
			t.Errorf("level %d: the bookkeeping has %d files, the replica %d", i, counts[i], len(listed[i]))
		}
	}

	restoreAt := func(target ltx.TXID) (restore.Result, [32]byte, error) {
		out := filepath.Join(t.TempDir(), "r.db")
		res, err := restore.Restore(ctx, file.NewClient(repDir), restore.Options{OutputPath: out, TXID: target})
		if err != nil {
			return res, [32]byte{}, err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return res, sha256.Sum256(b), nil
	}
	res, sum, err := restoreAt(0)
	if err != nil {
		t.Fatalf("latest restore: %v", err)
	}
	if sum != images[txid] || res.TXID != txid {
		t.Fatalf("latest restore: TXID %d, image matches %v; want TXID %d", res.TXID, sum == images[txid], txid)
	}
	// Snapshot, level 3 (one per hour), level 2 within the hour, level 1
	// within 5 minutes, the level-0 tail.
	if limit := 1 + int(span/time.Hour) + 12 + 10 + 7; len(res.Files) > limit {
		t.Errorf("the latest restore read %d files, want at most %d", len(res.Files), limit)
	}
	t.Logf("latest restore read %d files", len(res.Files))
	for i, f := range lv[1] {
		if i%17 != 0 {
			continue
		}
		_, sum, err := restoreAt(f.MaxTXID)
		if err != nil {
			if keep := os.Getenv("KEEP_REPLICA"); keep != "" {
				_ = os.CopyFS(keep, os.DirFS(repDir))
			}
			t.Fatalf("restore to level-1 boundary %d: %v", f.MaxTXID, err)
		}
		if sum != images[f.MaxTXID] {
			t.Errorf("restore to level-1 boundary %d differs from the model then", f.MaxTXID)
		}
	}
	if f := lv[1][0]; f.MaxTXID > f.MinTXID {
		if _, _, err := restoreAt(f.MinTXID); err == nil {
			t.Errorf("restore to TXID %d, inside the first level-1 file with its level-0 files expired, succeeded", f.MinTXID)
		}
	}

	// Idle: everything compacts and expires, then nothing is pending.
	for i := 0; i < 200; i++ {
		clock.Advance(time.Minute)
		settle()
	}
	if _, due, _ := r.compactStep(ctx); !due.IsZero() {
		lv, _ := r.cat.levels()
		t.Errorf("an idle replica still has work due at %v (files by level: %d %d %d %d)", due, len(lv[0]), len(lv[1]), len(lv[2]), len(lv[3]))
	}
	if lv, _ := r.cat.levels(); len(lv[0]) != 0 || lv[3][len(lv[3])-1].MaxTXID != txid {
		t.Errorf("idle: %d level-0 files left, level 3 ends at %d (want 0 and %d)", len(lv[0]), lv[3][len(lv[3])-1].MaxTXID, txid)
	}
	st := r.Status()
	if st.ReplicaFiles == 0 || st.Compactions == 0 || st.LastCompactionAt.IsZero() || st.LastSnapshotAt.IsZero() {
		t.Errorf("status %+v lacks the replica's files or the compaction", st)
	}
}
