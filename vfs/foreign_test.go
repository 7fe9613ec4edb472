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
		pub      uint32 // the commit block's seqlock then (2 per commit)
		captured int    // transactions it captured
		after    uint64 // announcements when the shortfall is judged
		pubAfter uint32
		hold     bool // the shortfall is judged during the next step
		mid      bool // a held verdict runs after this step read its counters
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
		// Another process's commits, published: the verdict of the first
		// step accounts the second step's publications before it does
		// (an unsigned difference then wrapped: 2^31 announcements).
		{name: "PublishedBehindVerdict", steps: []step{{pub: 2, pubAfter: 2, captured: 2, hold: true}, {pub: 2, captured: 3, pubAfter: 6, mid: true}}, foreign: 2},
		{name: "ForeignAmongAnnounced", steps: []step{{before: 1, captured: 2, after: 2}, {before: 2, captured: 3, after: 4}}, foreign: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var now uint64
			var pub uint32
			var found int64
			f := newForeignCount(func() (uint64, uint32) { mu.Lock(); defer mu.Unlock(); return now, pub },
				func(n int64) { mu.Lock(); found += n; mu.Unlock() })
			f.delay = time.Hour // judged by hand below
			f.reset(0, 0)
			judge := func() {
				f.mu.Lock()
				j := f.judge
				f.mu.Unlock()
				if j != nil && j.Stop() {
					f.verdict()
				}
			}
			for _, s := range tt.steps {
				mu.Lock()
				now, pub = s.after, s.pubAfter // made by the end of the step
				mu.Unlock()
				if s.mid {
					judge()
				}
				f.step(s.before, s.pub, s.captured)
				if !s.hold {
					judge()
				}
			}
			if found != tt.foreign {
				t.Errorf("foreign %d, want %d", found, tt.foreign)
			}
		})
	}
}
