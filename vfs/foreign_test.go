package vfs

import (
	"sync"
	"testing"
	"time"
)

// TestForeignCount: captured transactions are matched against the
// announcements of extension-loaded commits; only the rest count as
// foreign.
func TestForeignCount(t *testing.T) {
	type step struct {
		before   uint64 // announcements when the step began
		captured int    // transactions it captured
		after    uint64 // announcements when the shortfall is judged
	}
	tests := []struct {
		name    string
		steps   []step
		foreign int64
	}{
		{name: "AllAnnounced", steps: []step{{before: 3, captured: 3, after: 3}}},
		// A commit announced just after the step began, captured by it.
		{name: "AnnouncedLate", steps: []step{{before: 2, captured: 3, after: 3}}},
		// A commit made after the step read the WAL, announced before the
		// step ended, captured by the next step: not foreign (accounted
		// to the end of the step, it was dropped as snapshot-covered and
		// its capture counted as foreign).
		{name: "RacingCommit", steps: []step{{before: 2, captured: 2, after: 3}, {before: 3, captured: 1, after: 3}}},
		// Announced, then covered by a snapshot (never captured as a
		// transaction): the surplus is dropped, not kept for later.
		{name: "CoveredBySnapshot", steps: []step{{before: 5, captured: 1, after: 5}, {before: 5, captured: 2, after: 5}}, foreign: 2},
		{name: "Foreign", steps: []step{{before: 1, captured: 4, after: 1}}, foreign: 3},
		{name: "ForeignAmongAnnounced", steps: []step{{before: 1, captured: 2, after: 2}, {before: 2, captured: 3, after: 4}}, foreign: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var now uint64
			var found int64
			f := newForeignCount(func() (uint64, uint32) { mu.Lock(); defer mu.Unlock(); return now, 0 },
				func(n int64) { mu.Lock(); found += n; mu.Unlock() })
			f.delay = time.Hour // judged by hand below
			f.reset(0, 0)
			for _, s := range tt.steps {
				mu.Lock()
				now = s.after // made by the end of the step
				mu.Unlock()
				f.step(s.before, 0, s.captured)
				f.mu.Lock()
				judge := f.judge
				f.mu.Unlock()
				if judge != nil && judge.Stop() {
					f.verdict()
				}
			}
			if found != tt.foreign {
				t.Errorf("foreign %d, want %d", found, tt.foreign)
			}
		})
	}
}
