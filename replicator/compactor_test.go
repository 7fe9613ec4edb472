package replicator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
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

// sim runs the real replicator, compaction planner and a directory
// replica on a fake clock, calling the compactor's step after every tick
// as its goroutine would.
type sim struct {
	t      testing.TB
	ctx    context.Context
	repDir string
	clock  *fakeClock
	cfg    compact.Config
	r      *Replicator
	m      *model
	txid   ltx.TXID
	images map[ltx.TXID][32]byte // the model's image at every TXID
	// shipped is every level-0 file's size and upload time.
	shipped []shippedFile
}

type shippedFile struct {
	at   time.Time
	size int64
}

// shippedSince returns the bytes shipped at level 0 since t.
func (s *sim) shippedSince(t time.Time) int64 {
	var n int64
	for _, f := range s.shipped {
		if !f.at.Before(t) {
			n += f.size
		}
	}
	return n
}

func newSim(t *testing.T, cfg compact.Config) *sim {
	t.Helper()
	return newSimOn(t, cfg, func(dir string) replica.Client { return file.NewClient(dir) })
}

// newSimOn is newSim with the replica client that client returns for the
// replica directory.
func newSimOn(t testing.TB, cfg compact.Config, client func(dir string) replica.Client) *sim {
	t.Helper()
	dir := t.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "compaction-sim-"); err == nil {
		// Thousands of uploads and merges, each fsynced: on tmpfs the
		// simulation runs in seconds.
		dir = shm
		t.Cleanup(func() { _ = os.RemoveAll(shm) })
	}
	s := &sim{t: t, ctx: context.Background(), repDir: filepath.Join(dir, "replica"), cfg: cfg,
		clock: &fakeClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}, images: map[ltx.TXID][32]byte{}}
	s.r = New(client(s.repDir), Options{
		SpoolDir:   filepath.Join(dir, "spool"),
		Logger:     slog.New(slog.DiscardHandler),
		RetryMin:   time.Millisecond,
		RetryMax:   20 * time.Millisecond,
		Compaction: cfg,
		Clock:      s.clock,
	})
	s.r.manualCompaction = true
	if err := s.r.Open(s.ctx); err != nil {
		t.Fatal(err)
	}
	s.r.Start(s.ctx)
	t.Cleanup(func() { _ = s.r.Close() })
	s.m = newModel(512, 20, 7)
	txid, err := s.r.Snapshot(512, s.m.commit(), s.m.read, nil, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.record(txid)
	return s
}

func (s *sim) record(txid ltx.TXID) {
	s.t.Helper()
	s.txid = txid
	s.images[txid] = sha256.Sum256(s.m.image())
	s.waitFor(txid)
}

// waitFor waits until txid is in the replica.
func (s *sim) waitFor(txid ltx.TXID) {
	s.t.Helper()
	c, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.r.WaitReplicated(c, txid); err != nil {
		s.t.Fatalf("WaitReplicated(%d): %v", txid, err)
	}
}

// commit changes a random page (growing the model to 30 pages, every new
// page written) and ships it.
func (s *sim) commit() {
	s.t.Helper()
	m := s.m
	pgnos := []uint32{uint32(1 + m.rnd.Intn(30))}
	for pg := m.commit() + 1; pg < pgnos[0]; pg++ {
		pgnos = append(pgnos, pg)
	}
	pgnos = m.change(pgnos...)
	txid, err := s.r.Append(1, 512, m.commit(), pgnos, m.read, nil, s.clock.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	s.record(txid)
	lv, _ := s.r.cat.levels()
	for _, f := range lv[0] {
		if f.MaxTXID == txid {
			s.shipped = append(s.shipped, shippedFile{s.clock.Now(), f.Size})
		}
	}
}

// advance moves the clock and runs every compaction step due.
func (s *sim) advance(d time.Duration) {
	s.t.Helper()
	s.clock.Advance(d)
	for i := 0; ; i++ {
		worked, _, err := s.r.compactStep(s.ctx)
		if err != nil {
			s.t.Fatalf("compactStep: %v", err)
		}
		if !worked {
			return
		}
		if i > 1000 {
			s.t.Fatal("compactStep never settles")
		}
	}
}

// counts returns the files by level of the owner's catalog, checked
// against a listing of the replica.
func (s *sim) counts() []int {
	s.t.Helper()
	lv, _ := s.r.cat.levels()
	listed, err := listLevels(s.ctx, file.NewClient(s.repDir))
	if err != nil {
		s.t.Fatal(err)
	}
	counts := make([]int, len(lv))
	for i := range lv {
		counts[i] = len(lv[i])
		if len(listed[i]) != counts[i] {
			s.t.Errorf("level %d: the bookkeeping has %d files, the replica %d", i, counts[i], len(listed[i]))
		}
	}
	return counts
}

// restoreAt restores target (0: the latest) and returns the result and the
// restored image's hash.
func (s *sim) restoreAt(target ltx.TXID) (restore.Result, [32]byte, error) {
	out := filepath.Join(s.t.TempDir(), "r.db")
	res, err := restore.Restore(s.ctx, file.NewClient(s.repDir), restore.Options{OutputPath: out, TXID: target})
	if err != nil {
		return res, [32]byte{}, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		s.t.Fatal(err)
	}
	return res, sha256.Sum256(b), nil
}

// checkRestore requires a restore of target (0: latest) to equal the
// model then.
func (s *sim) checkRestore(target ltx.TXID) restore.Result {
	s.t.Helper()
	res, sum, err := s.restoreAt(target)
	if err != nil {
		if keep := os.Getenv("KEEP_REPLICA"); keep != "" {
			_ = os.CopyFS(keep, os.DirFS(s.repDir))
		}
		s.t.Fatalf("restore to TXID %d: %v", target, err)
	}
	if sum != s.images[res.TXID] || (target != 0 && res.TXID != target) {
		s.t.Fatalf("restore to TXID %d: got TXID %d, image equal to the model then: %v", target, res.TXID, sum == s.images[res.TXID])
	}
	return res
}

// TestCompactionSimulated drives two simulated hours of commits (one
// every 5 s) with Litestream's default intervals and no retention. Then:
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
	cfg := compact.Config{Intervals: compact.DefaultIntervals, L0Retention: compact.DefaultL0Retention}
	s := newSim(t, cfg)
	for elapsed := time.Duration(0); elapsed < span; elapsed += tick {
		s.commit()
		s.advance(tick)
	}
	counts := s.counts()
	t.Logf("after %v: files by level %v, TXID %d", span, counts, s.txid)

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
	// Every point a level-0 file ends at is restorable while the file is
	// listed (they expired one by one, and a restore to a later one in the
	// same level-1 window found the first ones gone).
	lv0, _ := s.r.cat.levels()
	for _, f := range lv0[0] {
		s.checkRestore(f.MaxTXID)
	}
	res := s.checkRestore(0)
	// Snapshot, level 3 (one per hour), level 2 within the hour, level 1
	// within 5 minutes, the level-0 tail.
	if limit := 1 + int(span/time.Hour) + 12 + 10 + 7; len(res.Files) > limit {
		t.Errorf("the latest restore read %d files, want at most %d", len(res.Files), limit)
	}
	t.Logf("latest restore read %d files", len(res.Files))
	lv, _ := s.r.cat.levels()
	for i, f := range lv[1] {
		if i%17 == 0 {
			s.checkRestore(f.MaxTXID)
		}
	}
	if f := lv[1][0]; f.MaxTXID > f.MinTXID {
		if _, _, err := s.restoreAt(f.MinTXID); err == nil {
			t.Errorf("restore to TXID %d, inside the first level-1 file with its level-0 files expired, succeeded", f.MinTXID)
		}
	}

	// Idle: everything compacts and expires, then nothing is pending.
	for i := 0; i < 200; i++ {
		s.advance(time.Minute)
	}
	if _, due, _ := s.r.compactStep(s.ctx); !due.IsZero() {
		t.Errorf("an idle replica still has work due at %v (files by level %v)", due, s.counts())
	}
	if lv, _ := s.r.cat.levels(); len(lv[0]) != 0 || lv[3][len(lv[3])-1].MaxTXID != s.txid {
		t.Errorf("idle: %d level-0 files left, level 3 ends at %d (want 0 and %d)", len(lv[0]), lv[3][len(lv[3])-1].MaxTXID, s.txid)
	}
	st := s.r.Status()
	if st.ReplicaFiles == 0 || st.Compactions == 0 || st.LastCompactionAt.IsZero() || st.LastSnapshotAt.IsZero() {
		t.Errorf("status %+v lacks the replica's files or the compaction", st)
	}
}

// TestRetentionSimulated drives three simulated days with the default
// schedule (levels 30s/5m/1h, l0-retention 5m, retention 24h, a snapshot
// at least daily, at most 16 settled files and 1.0× the database after
// it): ticks of 15 s with 0 or 1 commit, now and then hours of idle.
// Every six simulated hours after the first day:
//   - the files per level stay within (retention + snapshot-interval) /
//     interval + 2 (level 0: (l0-retention + level-1 interval) / tick +
//     2), snapshots within 2 + (retention + snapshot-interval) /
//     snapshot-interval + (bytes shipped at level 0 in that window) /
//     (snapshot-max-ratio × the database's size);
//   - the latest restore equals the model, reads at most 16 settled files
//     (the snapshot and highest-level files) and at most 2.1× the
//     database's bytes;
//   - restores to sampled file ends made inside the window equal the
//     model then; a TXID before the oldest kept snapshot is refused,
//     naming it.
func TestRetentionSimulated(t *testing.T) {
	// Ticks shorter than the level-1 interval: a snapshot can fall due
	// while level-0 files past level 1 wait for their window.
	const tick = 15 * time.Second
	cfg := compact.Defaults()
	s := newSim(t, cfg)
	checks := 0
	for elapsed := time.Duration(0); elapsed < 72*time.Hour; elapsed += tick {
		for n := s.m.rnd.Intn(2); n > 0; n-- {
			s.commit()
		}
		if s.m.rnd.Intn(2000) == 0 {
			idle := time.Duration(1+s.m.rnd.Intn(4)) * time.Hour
			s.advance(idle)
			elapsed += idle
		}
		s.advance(tick)
		if elapsed < 24*time.Hour || elapsed%(6*time.Hour) != 0 {
			continue
		}
		checks++
		counts := s.counts()
		window := cfg.Retention + cfg.SnapshotInterval
		if max0 := int((cfg.L0Retention+cfg.Intervals[0])/tick) + 2; counts[0] > max0 {
			t.Errorf("at %v: %d level-0 files, want at most %d", elapsed, counts[0], max0)
		}
		for i, iv := range cfg.Intervals {
			if limit := int(window/iv) + 2; counts[i+1] > limit {
				t.Errorf("at %v: level %d has %d files, want at most %d", elapsed, i+1, counts[i+1], limit)
			}
		}
		// Snapshots: the interval's, and one each time the files after
		// the last one outgrow the database (they hold no more than what
		// level 0 shipped).
		db := s.r.dbBytes.Load()
		shipped := s.shippedSince(s.clock.Now().Add(-window))
		if limit := 2 + int(window/cfg.SnapshotInterval) + int(float64(shipped)/(cfg.SnapshotMaxRatio*float64(db))); counts[9] > limit {
			t.Errorf("at %v: %d snapshots, want at most %d (%d bytes shipped at level 0 in the window, database %d bytes)", elapsed, counts[9], limit, shipped, db)
		}
		res := s.checkRestore(0)
		// It starts at the newest snapshot: every snapshot's chain to the
		// latest TXID survives compaction and expiry (a snapshot built at a
		// level-0 TXID lost its chain once the level-0 files after it
		// expired, and the restore fell back to an older one).
		if lv, _ := s.r.cat.levels(); res.Files[0] != replica.LTXFilePath(9, 1, lv[9][len(lv[9])-1].MaxTXID) {
			t.Errorf("at %v: the latest restore starts at %s, not at the newest snapshot TXID %d", elapsed, res.Files[0], lv[9][len(lv[9])-1].MaxTXID)
		}
		settled := 0
		for _, f := range res.Files {
			if strings.HasPrefix(f, "ltx/9/") || strings.HasPrefix(f, fmt.Sprintf("ltx/%d/", len(cfg.Intervals))) {
				settled++
			}
		}
		if settled > cfg.SnapshotMaxFiles || float64(res.Bytes) > 2.1*float64(db) {
			t.Errorf("at %v: the latest restore read %d settled files of %d and %d bytes (database %d bytes)", elapsed, settled, len(res.Files), res.Bytes, db)
		}
		lv, _ := s.r.cat.levels()
		cutoff := s.clock.Now().Add(-cfg.Retention)
		sampled := 0
		for level := 1; level <= len(cfg.Intervals); level++ {
			for i, f := range lv[level] {
				if f.CreatedAt.After(cutoff) && i%97 == 0 {
					s.checkRestore(f.MaxTXID)
					sampled++
				}
			}
		}
		if sampled == 0 {
			t.Errorf("at %v: no file end inside the window to restore", elapsed)
		}
		if oldest := compact.Oldest(cfg, &lv, s.clock.Now()); oldest > 2 {
			_, _, err := s.restoreAt(oldest - 1)
			if !errors.Is(err, restore.ErrNoSnapshot) && !errors.Is(err, restore.ErrTargetNotFound) {
				t.Errorf("at %v: restore to TXID %d, before the oldest kept snapshot (TXID %d): %v, want a refusal", elapsed, oldest-1, oldest, err)
			} else if errors.Is(err, restore.ErrNoSnapshot) && !strings.Contains(err.Error(), "oldest snapshot") {
				t.Errorf("at %v: the refusal does not name the oldest snapshot: %v", elapsed, err)
			}
		}
		if elapsed%(24*time.Hour) == 0 {
			t.Logf("day %d: files by level %v; latest restore %d files (%d settled), %d bytes, database %d bytes; TXID %d",
				elapsed/(24*time.Hour), counts, len(res.Files), settled, res.Bytes, db, s.txid)
		}
	}
	if checks < 4 {
		t.Fatalf("only %d checks ran", checks)
	}
	st := s.r.Status()
	t.Logf("status: %d files, %d bytes, %d compactions, %d snapshots built from the replica", st.ReplicaFiles, st.ReplicaBytes, st.Compactions, st.Snapshots)
	if st.Snapshots == 0 {
		t.Errorf("no snapshot was built from the replica's files in three days")
	}
}

// TestCompactionAfterTakeOver: a new owner finds level-0 files its killed
// predecessor left uncompacted and compacts them without any upload of
// its own (it waited for an upload that an idle database never makes).
func TestCompactionAfterTakeOver(t *testing.T) {
	cfg := compact.Config{Intervals: []time.Duration{time.Second}, L0Retention: time.Second}
	s := newSim(t, cfg)
	for i := 0; i < 5; i++ {
		s.commit() // shipped, never compacted: the sim steps the compactor by hand
	}
	if err := s.r.Close(); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(time.Minute)
	r := New(file.NewClient(s.repDir), Options{
		SpoolDir:   filepath.Join(filepath.Dir(s.repDir), "spool"),
		Logger:     slog.New(slog.DiscardHandler),
		Compaction: cfg,
		Clock:      s.clock,
	})
	if err := r.Open(s.ctx); err != nil {
		t.Fatal(err)
	}
	r.Start(s.ctx)
	defer r.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lv, _ := r.cat.levels()
		if len(lv[1]) > 0 && lv[1][len(lv[1])-1].MaxTXID == s.txid {
			break
		}
		if time.Now().After(deadline) {
			_, loaded := r.cat.levels()
			t.Fatalf("the new owner did not compact the files left to it: levels 0 and 1 hold %d and %d files (catalog loaded %v, status %+v)", len(lv[0]), len(lv[1]), loaded, r.Status())
		}
		time.Sleep(10 * time.Millisecond)
		s.clock.Advance(time.Second) // the listed files' times are the real clock's: now on this one
	}
}

// remoteClient hides the file client's local checks: it behaves like S3.
type remoteClient struct{ replica.Client }

// TestCompactionFindsReplicaEmptied: on a replica without free checks (S3),
// a compaction input that is gone makes the uploader confirm the replica
// again, which finds no chain from a snapshot and owes one (OnBroken).
func TestCompactionFindsReplicaEmptied(t *testing.T) {
	dir := t.TempDir()
	repDir := filepath.Join(dir, "replica")
	broken := make(chan struct{}, 1)
	cfg := compact.Config{Intervals: []time.Duration{time.Second}, L0Retention: time.Hour}
	clock := &fakeClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	r := startWith(t, remoteClient{file.NewClient(repDir)}, Options{
		SpoolDir: filepath.Join(dir, "spool"), RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond,
		Compaction: cfg, Clock: clock, OnBroken: func() { poke(broken) },
	}, true)
	ctx := context.Background()
	m := newModel(512, 4, 3)
	txid, err := r.Snapshot(512, m.commit(), m.read, nil, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		pg := m.change(2)
		if txid, err = r.Append(1, 512, m.commit(), pg, m.read, nil, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitReplicated(c, txid); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(repDir); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, _, err := r.compactStep(ctx); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("compactStep over an emptied replica: %v, want ErrNotFound", err)
	}
	select {
	case <-broken:
	case <-c.Done():
		t.Fatalf("the chain was not broken after the replica was emptied; status %+v", r.Status())
	}
}

// TestCompactionReadsLocalCopies: on a remote store, compacting level 0
// reads the shipped level-0 files from their spool records, not the
// store, except the first input of each job (which also checks the
// replica is still there); the result restores exactly. With a bound
// smaller than one file no copy is kept and every input is read from the
// store. The records go once compacted: the spool is empty again.
func TestCompactionReadsLocalCopies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		bound      int64
		storeReads int
	}{
		{"Kept", 0, 1},
		{"OverTheBound", 100, 8},
		// 700 transactions without waiting: uploads merge many spool
		// records into one level-0 file; past 512 records a job reads
		// the rest from the store (-1: at least the first).
		{"ManyRecords", 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			repDir := filepath.Join(dir, "replica")
			client := &requestCounter{Client: file.NewClient(repDir)}
			cfg := compact.Config{Intervals: []time.Duration{time.Minute}, L0Retention: time.Hour}
			clock := &fakeClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
			r := startWith(t, client, Options{
				SpoolDir: filepath.Join(dir, "spool"), RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond,
				Compaction: cfg, Clock: clock, LocalCopyBytes: tc.bound,
			}, true)
			ctx := context.Background()
			m := newModel(512, 6, 5)
			txid, err := r.Snapshot(512, m.commit(), m.read, nil, clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			waitReplicated(t, r, txid)
			n, wait := 8, true // one level-0 file each
			if tc.storeReads < 0 {
				n, wait = 700, false
			}
			for i := 0; i < n; i++ {
				if txid, err = r.Append(1, 512, m.commit(), m.change(uint32(1+i%6)), m.read, nil, clock.Now()); err != nil {
					t.Fatal(err)
				}
				if wait || i == n-1 {
					waitReplicated(t, r, txid)
				}
			}
			client.mu.Lock()
			client.gets = map[int]int{}
			client.mu.Unlock()
			clock.Advance(2 * time.Minute)
			if worked, _, err := r.compactStep(ctx); err != nil || !worked {
				t.Fatalf("compactStep: worked %v, %v", worked, err)
			}
			lv, _ := r.cat.levels()
			if len(lv[1]) != 1 || lv[1][0].MaxTXID != txid {
				t.Fatalf("level 1 after the compaction: %d files", len(lv[1]))
			}
			client.mu.Lock()
			got := client.gets[0]
			client.mu.Unlock()
			if got != tc.storeReads && (tc.storeReads >= 0 || got < 1) {
				t.Errorf("level-0 files read from the store: %d, want %d", got, tc.storeReads)
			}
			r.mu.Lock()
			copies := len(r.copies)
			r.mu.Unlock()
			if copies != 0 {
				t.Errorf("after the compaction %d copies kept, want none", copies)
			}
			r.spool.mu.Lock()
			live := 0
			if r.spool.active != nil {
				live = r.spool.active.live
			}
			r.spool.mu.Unlock()
			if live != 0 {
				t.Errorf("the spool holds %d records after everything shipped and compacted", live)
			}
			// Level 1 alone (the level-0 files deleted) restores exactly.
			if err := file.NewClient(repDir).DeleteLTXFiles(ctx, lv[0]); err != nil {
				t.Fatal(err)
			}
			res, err := restore.Restore(ctx, file.NewClient(repDir), restore.Options{OutputPath: filepath.Join(dir, "out.db")})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "out.db"))
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(b) != sha256.Sum256(m.image()) || len(res.Files) != 2 {
				t.Errorf("restore from the snapshot and level 1 (%d files) differs from the model", len(res.Files))
			}
		})
	}
}

// TestCatalogOwnsItsListing: the catalog keeps its own copy of the listing
// it is set from. It kept the caller's slices, and removing a file (an
// expiry the confirm's poke started) cleared their tail while confirm
// still read them: a nil file and a panic in the uploader
// (TestKillDuringExpiry found it in CI).
func TestCatalogOwnsItsListing(t *testing.T) {
	var lv compact.Levels
	for txid := ltx.TXID(2); txid <= 4; txid++ {
		lv[0] = append(lv[0], &ltx.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid})
	}
	var c catalog
	c.set(lv, time.Now())
	c.remove(lv[0][:1])
	for i, f := range lv[0] {
		if f == nil {
			t.Fatalf("the caller's listing has a nil file at %d after the catalog removed one", i)
		}
	}
	if got, _ := c.levels(); len(got[0]) != 2 {
		t.Fatalf("catalog holds %d level-0 files, want 2", len(got[0]))
	}
}
