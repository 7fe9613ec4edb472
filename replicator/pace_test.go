package replicator

import (
	"context"
	"testing"
	"time"

	"github.com/superfly/ltx"
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
