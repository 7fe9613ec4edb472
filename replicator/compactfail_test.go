package replicator

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// breakLevel makes level's directory of a directory replica unwritable
// (a file where the directory belongs): every compaction into it fails.
func breakLevel(t *testing.T, repDir string, level int) {
	t.Helper()
	dir := filepath.Join(repDir, "ltx", strconv.Itoa(level))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCompactionFailingLevel (found by an attack): a level whose
// compaction keeps failing must not hold back level-0 expiry and
// retention. They ran only when no compaction was due, so with level 2
// failing the level-0 files level 1 held were never deleted and the
// replica grew without bound.
func TestCompactionFailingLevel(t *testing.T) {
	cfg := compact.Config{Intervals: []time.Duration{time.Second, 4 * time.Second}, L0Retention: 2 * time.Second}
	s := newSim(t, cfg)
	s.commit()
	breakLevel(t, s.repDir, 2)
	failures := 0
	for i := 0; i < 40; i++ {
		s.commit()
		s.clock.Advance(time.Second)
		for j := 0; j < 100; j++ {
			worked, _, err := s.r.compactStep(s.ctx)
			if err != nil {
				failures++
				break // the loop backs off here
			}
			if !worked {
				break
			}
		}
	}
	if failures == 0 {
		t.Fatal("level 2 never failed: the test did not break it")
	}
	lv, _ := s.r.cat.levels()
	// Level 1 covers all but the files of the current window, and those
	// older than l0-retention go: a handful stay, not one per commit.
	if n := len(lv[0]); n > 6 {
		t.Errorf("%d level-0 files after 40 s with l0-retention 2s while level 2 fails (%d failures); want expiry to go on", n, failures)
	}
	// What expiry left restores (with level 2 a directory again).
	dir := filepath.Join(s.repDir, "ltx", "2")
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.checkRestore(0)
}

// level1 is a replicator compacting into one level of 1 s on a fake
// clock, with a model database whose snapshot it shipped.
type level1 struct {
	t     *testing.T
	r     *Replicator
	clock *fakeClock
	m     *model
}

func startLevel1(t *testing.T, c replica.Client, retryMin, retryMax time.Duration) *level1 {
	t.Helper()
	l := &level1{t: t, clock: &fakeClock{now: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}, m: newModel(512, 4, 3)}
	l.r = startWith(t, c, Options{
		SpoolDir: filepath.Join(t.TempDir(), "spool"), RetryMin: retryMin, RetryMax: retryMax,
		Compaction: compact.Config{Intervals: []time.Duration{time.Second}, L0Retention: time.Hour}, Clock: l.clock,
	}, false)
	txid, err := l.r.Snapshot(512, l.m.commit(), l.m.read, nil, l.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, l.r, txid)
	return l
}

// ship commits a change of page pgno and waits until the replica has it.
func (l *level1) ship(pgno uint32) {
	l.t.Helper()
	txid, err := l.r.Append(1, 512, l.m.commit(), l.m.change(pgno), l.m.read, nil, l.clock.Now())
	if err != nil {
		l.t.Fatal(err)
	}
	waitReplicated(l.t, l.r, txid)
}

// attemptCounter counts writes to one level of the replica.
type attemptCounter struct {
	replica.Client
	level    int
	attempts atomic.Int64
}

func (c *attemptCounter) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if level == c.level {
		c.attempts.Add(1)
	}
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

// TestCompactionBackoffUnderLoad (found by an attack): a failing
// compaction is retried after the backoff it logs, not at every upload
// (each woke the compactor, which retried at once: ~90 attempts a
// second under load, each one repeating its GETs and a PUT on S3). The
// clock does not move, so no backoff ends: one attempt, however many
// uploads follow.
func TestCompactionBackoffUnderLoad(t *testing.T) {
	repDir := filepath.Join(t.TempDir(), "replica")
	c := &attemptCounter{Client: file.NewClient(repDir), level: 1}
	l := startLevel1(t, c, time.Second, 5*time.Second)
	l.ship(2)
	breakLevel(t, repDir, 1)
	l.clock.Advance(2 * time.Second) // level 1 is due
	l.ship(3)
	waitFor(t, "a failed compaction", func() bool { return l.r.Status().CompactionError != "" })
	for i := 0; i < 30; i++ {
		l.ship(uint32(2 + i%3))
	}
	time.Sleep(50 * time.Millisecond) // let a compactor that would retry do so
	if n := c.attempts.Load(); n != 1 {
		t.Errorf("%d attempts of the failing compaction during 30 uploads and no time passing; want 1 (the backoff holds)", n)
	}
}

// stallClient stalls every level-1 write until its context ends, as a
// long compaction upload would be when the process exits.
type stallClient struct {
	replica.Client
	started chan struct{}
}

func (c *stallClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if level != 1 {
		return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	}
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, io.MultiReader(io.LimitReader(r, 100), stallReader{ctx, c.started}))
}

type stallReader struct {
	ctx     context.Context
	started chan struct{}
}

func (s stallReader) Read([]byte) (int, error) {
	poke(s.started)
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

// TestStopCompaction (found by an attack: a clean exit during a
// compaction left its partial .tmp object in the replica, reported by
// every ltxrestore until a later owner removed it): StopCompaction ends a
// compaction being written, its partial object is removed, and uploads go
// on.
func TestStopCompaction(t *testing.T) {
	repDir := filepath.Join(t.TempDir(), "replica")
	c := &stallClient{Client: file.NewClient(repDir), started: make(chan struct{}, 1)}
	l := startLevel1(t, c, time.Millisecond, 10*time.Millisecond)
	l.clock.Advance(2 * time.Second)
	l.ship(2)
	l.clock.Advance(2 * time.Second) // level 1 is due
	l.ship(3)
	select {
	case <-c.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no level-1 compaction started")
	}
	tmps := func() []string {
		m, _ := filepath.Glob(filepath.Join(repDir, "ltx", "1", "*.tmp"))
		return m
	}
	if len(tmps()) == 0 {
		t.Fatal("no partial object while the compaction is written: the test does not stall it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.r.StopCompaction(ctx); err != nil {
		t.Fatalf("StopCompaction: %v", err)
	}
	if left := tmps(); len(left) > 0 {
		t.Errorf("partial objects left after StopCompaction: %v", left)
	}
	l.ship(2) // uploads go on
}
