package replicator

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
)

func TestGapFor(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		txns  int64
		since time.Duration
		cost  time.Duration
		floor time.Duration
		want  time.Duration
	}{
		{"FirstOperation", 100, 0, ms, 0, 0},
		{"LightLoad", 1, 10 * ms, ms, 0, 0},   // 100 txn/s
		{"AtThreshold", 5, 10 * ms, ms, 0, 0}, // 500 txn/s
		{"AboveThreshold", 6, 10 * ms, ms, 0, dutyFactor * ms},
		{"CheapOperation", 1000, 100 * ms, time.Microsecond, 0, minGap},
		{"Floor", 1000, 100 * ms, time.Microsecond, uploadFloor, uploadFloor},
		{"FloorLightLoad", 1, 10 * ms, time.Microsecond, uploadFloor, 0},
		{"CostAboveFloor", 1000, 100 * ms, ms, uploadFloor, dutyFactor * ms},
		{"CostlyOperation", 1000, 100 * ms, 20 * ms, uploadFloor, maxGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gapFor(tt.txns, tt.since, tt.cost, tt.floor); got != tt.want {
				t.Fatalf("gapFor(%d, %v, %v, %v)=%v, want %v", tt.txns, tt.since, tt.cost, tt.floor, got, tt.want)
			}
		})
	}
}

func TestPacerWait(t *testing.T) {
	t.Run("NoGap", func(t *testing.T) {
		var p pacer
		p.done(time.Now(), 1, time.Millisecond)
		if !p.wait(context.Background(), nil) {
			t.Fatal("wait=false")
		}
	})
	t.Run("UrgeCutsGap", func(t *testing.T) {
		p := pacer{last: time.Now(), gap: time.Hour}
		urge := make(chan struct{}, 1)
		urge <- struct{}{}
		if !p.wait(context.Background(), urge) {
			t.Fatal("wait=false")
		}
	})
	t.Run("CancelEndsGap", func(t *testing.T) {
		p := pacer{last: time.Now(), gap: time.Hour}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if p.wait(ctx, nil) {
			t.Fatal("wait=true after cancel")
		}
	})
	t.Run("LoadSetsGap", func(t *testing.T) {
		var p pacer
		t0 := time.Now()
		p.done(t0, 1, time.Millisecond)
		p.done(t0.Add(10*time.Millisecond), 100, time.Millisecond) // 10,000 txn/s
		if p.gap != dutyFactor*time.Millisecond {
			t.Fatalf("gap=%v, want %v", p.gap, dutyFactor*time.Millisecond)
		}
		p.done(t0.Add(time.Second), 1, time.Millisecond) // quiet again
		if p.gap != 0 {
			t.Fatalf("gap=%v after a quiet spell, want 0", p.gap)
		}
	})
}

// TestUrgeTo: a TXID the replica holds urges nothing (a writer at another
// process's WAL-reset gate raises the shared signal a sync raises, with the
// sync target of long ago: every step was uploaded at once); a TXID past it
// ends the committer's and the uploader's pauses.
func TestUrgeTo(t *testing.T) {
	newR := func() *Replicator {
		r := New(nil, Options{})
		r.confirmed, r.replicated = true, ltx.Pos{TXID: 10}
		return r
	}
	urged := func(r *Replicator) bool {
		select {
		case <-r.uploadUrge:
			return true
		default:
			return false
		}
	}
	r := newR()
	r.UrgeTo(10)
	if urged(r) || r.wanted(9) {
		t.Errorf("UrgeTo(10) with TXID 10 replicated urged the uploader")
	}
	r.UrgeTo(11)
	if !urged(r) || !r.wanted(10) {
		t.Errorf("UrgeTo(11) with TXID 10 replicated did not urge the uploader")
	}
}

// TestReplicatorPutBurst: with a PUT budget of 2 a second and a burst of
// 4, commits after a quiet spell ship one object each at once; a steady
// stream then ships at most the sustained rate; a caller waiting for the
// replica (UrgeTo, as litestream_sync does) ships at once though the
// budget is spent, on a credit of one burst.
func TestReplicatorPutBurst(t *testing.T) {
	dir := t.TempDir()
	cc := &countingClient{Client: file.NewClient(filepath.Join(dir, "replica"))}
	r := startWith(t, cc, Options{SpoolDir: filepath.Join(dir, "spool"), MaxPutsPerSecond: 2, PutBurst: 4}, false)
	m := newModel(512, 4, 3)
	txid, err := r.Snapshot(512, m.commit(), m.read, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// wait polls: WaitReplicated would urge the upload.
	wait := func(txid ltx.TXID) time.Duration {
		t.Helper()
		start := time.Now()
		for r.Status().ReplicatedTXID < txid {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("TXID %d not replicated after 10 s: %+v", txid, r.Status())
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Since(start)
	}
	appendOne := func(i int) ltx.TXID {
		t.Helper()
		txid, err := r.Append(1, 512, m.commit(), m.change(uint32(i%4)+1), m.read, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return txid
	}
	puts := func() int {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return len(cc.puts)
	}
	wait(txid)
	time.Sleep(2100 * time.Millisecond) // the bucket refills (4 at 2/s)

	// A burst: each commit is its own object, none waits for the budget.
	// (Counted, not timed: a loaded machine took 345 ms for one.)
	before := puts()
	held := r.budgetHeld.Load()
	for i := 0; i < 4; i++ {
		wait(appendOne(i))
		if n := r.budgetHeld.Load() - held; n != 0 {
			t.Errorf("commit %d of a burst after a quiet spell waited for the budget (%d waits)", i, n)
		}
	}
	if n := puts() - before; n != 4 {
		t.Errorf("%d PUTs for 4 commits after a quiet spell, want 4", n)
	}

	// Sustained: 2 s of commits every 20 ms, budget spent: ≤ 2/s (+1).
	before = puts()
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		txid = appendOne(1)
		time.Sleep(20 * time.Millisecond)
	}
	wait(txid)
	elapsed := time.Since(start)
	if n, limit := puts()-before, int(2*elapsed.Seconds())+1; n > limit {
		t.Errorf("%d PUTs in %v of steady commits, want at most %d at 2/s", n, elapsed, limit)
	}

	// The budget is spent: the next commit waits for it, and the status
	// says until when (litestream_status names the budget as the reason).
	txid = appendOne(3)
	deadline := time.Now().Add(time.Second)
	for r.Status().BudgetWait.IsZero() && r.Status().ReplicatedTXID < txid && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := r.Status(); st.ReplicatedTXID < txid && st.BudgetWait.IsZero() {
		t.Errorf("a commit waits for the spent budget, but the status does not say so: %+v", st)
	}
	wait(txid)
	if st := r.Status(); !st.BudgetWait.IsZero() {
		t.Errorf("nothing waits, yet the status says the uploader waits for the budget until %v", st.BudgetWait)
	}

	// The budget is spent; a caller waiting for the replica does not wait
	// for it. (Urged before the commit: one urged after could find the
	// uploader already waiting for it, which the urge then ends.)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held = r.budgetHeld.Load()
	r.UrgeTo(txid + 1)
	if got := appendOne(2); got != txid+1 {
		t.Fatalf("TXID %d, want %d", got, txid+1)
	}
	txid++
	if err := r.WaitReplicated(ctx, txid); err != nil {
		t.Fatal(err)
	}
	if n := r.budgetHeld.Load() - held; n != 0 {
		t.Errorf("an urged commit waited for the spent budget (%d waits), want it at once", n)
	}

	// A sync after every commit: the credit is one burst, then the
	// sustained rate holds.
	before = puts()
	start = time.Now()
	for i := 0; time.Since(start) < 2*time.Second && i < 1000; i++ {
		txid = appendOne(i)
		if err := r.WaitReplicated(ctx, txid); err != nil {
			t.Fatal(err)
		}
	}
	elapsed = time.Since(start)
	if n, limit := puts()-before, 4+int(2*elapsed.Seconds())+1; n > limit {
		t.Errorf("%d PUTs in %v of a sync after every commit, want at most %d (the credit and 2/s)", n, elapsed, limit)
	}

	// replicate=sync commits (SyncTo) never wait for the budget, credit
	// spent or not: 20 in a row, each its own PUT, at once.
	before = puts()
	for i := 0; i < 20; i++ {
		held = r.budgetHeld.Load()
		r.SyncTo(txid + 1)
		if got := appendOne(i); got != txid+1 {
			t.Fatalf("TXID %d, want %d", got, txid+1)
		}
		txid++
		if err := r.WaitReplicated(ctx, txid); err != nil {
			t.Fatal(err)
		}
		if n := r.budgetHeld.Load() - held; n != 0 {
			t.Fatalf("replicate=sync commit %d waited for the spent budget (%d waits), want it at once", i, n)
		}
	}
	if n := puts() - before; n != 20 {
		t.Errorf("%d PUTs for 20 replicate=sync commits, want 20", n)
	}
}
