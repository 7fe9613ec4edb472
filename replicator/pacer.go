package replicator

import (
	"context"
	"time"
)

// Pacing of the replicator's costly recurring work: the spool fdatasync
// (committer) and, for replicas without a PUT cap, the upload. Each costs a
// few fsyncs whatever it carries, and on a busy disk they delay the
// application's own; under sustained load they are spaced so that they take
// about 1/dutyFactor of the time, and each carries more transactions.
const (
	// lightLoad is the transaction rate (per second) up to which work is
	// not paced, so light traffic reaches the replica in milliseconds.
	lightLoad = 500
	// dutyFactor: under load, the pause after an operation is this many
	// times what the operation took (about 1% of the time in it).
	dutyFactor = 100
	minGap     = 5 * time.Millisecond
	maxGap     = 250 * time.Millisecond
	// uploadFloor is the least pause under load between uploads to a
	// replica without a PUT cap (a local directory): each costs a file
	// create, write, fsync, rename and directory fsync however little it
	// carries, and at minGap an owner uploading 40 times a second spent a
	// quarter of its CPU there, taken from the writers on the same cores.
	// litestream_sync cuts the pause short.
	uploadFloor = 50 * time.Millisecond
)

// pacer spaces one kind of operation. Not safe for concurrent use.
type pacer struct {
	last  time.Time     // start of the previous operation
	gap   time.Duration // pause after it
	floor time.Duration // least pause under load (minGap if less)
}

// UnderLoad reports whether txns transactions arriving over since come
// faster than lightLoad a second: the rate above which the replicator's
// recurring work (here, and the capture loop's steps) is spaced out.
func UnderLoad(txns int64, since time.Duration) bool {
	return since > 0 && float64(txns) > lightLoad*since.Seconds()
}

// gapFor returns the pause after an operation that took cost and carried
// txns transactions that arrived over since: none unless UnderLoad,
// otherwise dutyFactor times cost, within [max(minGap, floor), maxGap].
func gapFor(txns int64, since, cost, floor time.Duration) time.Duration {
	if !UnderLoad(txns, since) {
		return 0
	}
	return min(max(dutyFactor*cost, minGap, floor), maxGap)
}

// wait blocks until the next operation may start, urge fires (a caller
// waits for the replica), or ctx ends. It reports whether ctx is still
// live.
func (p *pacer) wait(ctx context.Context, urge <-chan struct{}) bool {
	d := time.Until(p.last.Add(p.gap))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-urge:
	}
	return true
}

// done records an operation that started at start, carried txns
// transactions and took cost.
func (p *pacer) done(start time.Time, txns int64, cost time.Duration) {
	if !p.last.IsZero() {
		p.gap = gapFor(txns, start.Sub(p.last), cost, p.floor)
	}
	p.last = start
}
