package replicator

import (
	"testing"
	"time"
)

func TestPace(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		gap   time.Duration
		txns  int64
		since time.Duration
		want  time.Duration
	}{
		{"FirstCycle", 0, 100, 0, 0},
		{"LightLoad", 0, 1, 10 * ms, 0},                      // 100 txn/s
		{"AtThreshold", 0, 5, 10 * ms, 0},                    // 500 txn/s
		{"AboveThresholdStarts", 0, 6, 10 * ms, minCycleGap}, // 600 txn/s
		{"Doubles", 10 * ms, 100, 20 * ms, 20 * ms},
		{"Capped", 80 * ms, 1000, 100 * ms, maxCycleGap},
		{"LoadEndsResets", maxCycleGap, 1, 100 * ms, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pace(tt.gap, tt.txns, tt.since); got != tt.want {
				t.Fatalf("pace(%v, %d, %v)=%v, want %v", tt.gap, tt.txns, tt.since, got, tt.want)
			}
		})
	}
}
