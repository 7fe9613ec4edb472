package replicator

import (
	"context"
	"slices"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/superfly/ltx"
)

// The committer: captured files made durable in the spool, in order, and
// what happens when that fails or the spool overflows.

// txnCount returns how many transactions entries cover, a snapshot
// counting as one.
func txnCount(entries []*spoolEntry) int64 {
	var n int64
	for _, e := range entries {
		if e.MinTXID == 1 {
			n++
		} else {
			n += int64(e.MaxTXID - e.MinTXID + 1)
		}
	}
	return n
}

// commitLoop makes captured files durable in order, one fdatasync per
// batch. If that fails, the files after the last durable one are dropped
// until a snapshot restarts the chain, so the spool never has a gap.
func (r *Replicator) commitLoop(ctx context.Context) {
	var failed error
	var p pacer
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.commitWake:
		}
		r.mu.Lock()
		durable := r.durable.TXID
		r.mu.Unlock()
		if !r.wanted(durable) && !p.wait(ctx, r.urge) {
			return
		}
		threads.Background()
		start := time.Now()
		r.mu.Lock()
		batch := r.queue
		r.queue, r.syncing = nil, batch
		r.mu.Unlock()

		var keep []*spoolEntry
		for _, e := range batch {
			if failed != nil && e.MinTXID != 1 {
				r.spool.release(e)
				continue
			}
			failed = nil
			keep = append(keep, e)
		}
		if err := r.spool.sync(keep); err != nil {
			failed = err
			for _, e := range keep {
				r.spool.release(e)
			}
			keep = nil
		}
		p.done(start, txnCount(batch), time.Since(start))
		r.locked(func() {
			r.syncing = nil
			for _, e := range keep {
				if e.epoch != r.epoch || (r.confirmed && e.MaxTXID <= r.replicated.TXID) {
					r.spool.release(e) // dropped by confirm meanwhile, or already in the replica
					continue
				}
				r.pending = append(r.pending, e)
				r.durable = ltx.Pos{TXID: e.MaxTXID, PostApplyChecksum: e.Post}
			}
			if failed != nil {
				r.lastErr, r.lastErrAt, r.errActive = failed, time.Now(), true
			}
			r.notifyLocked()
		})
		if failed != nil {
			r.breakChain("spool write failed; a snapshot will follow", failed)
		}
		r.checkOverflow()
		poke(r.wake)
	}
}

// breakChain records that the chain of files has a hole: Append refuses
// until the next Snapshot, and the owner is asked for one.
func (r *Replicator) breakChain(why string, err error) {
	if r.broken.Swap(true) {
		return
	}
	r.logger.Warn(why, "err", err, "spool_max_bytes", r.opts.SpoolMaxBytes)
	if r.onBroken != nil {
		r.onBroken()
	}
}

// checkOverflow applies the spool bound (see dropOnOverflowLocked).
func (r *Replicator) checkOverflow() {
	var overflow bool
	r.locked(func() {
		if overflow = r.dropOnOverflowLocked(); overflow {
			r.notifyLocked()
		}
	})
	if overflow {
		r.breakChain("spool full during an outage; dropped what the replica lacks, a snapshot will follow", nil)
	}
}

// dropOnOverflowLocked enforces SpoolMaxBytes, while uploads fail, over the
// files waiting for the replica, not counting the newest snapshot (a snapshot alone may
// exceed the bound). Over it, the files before the newest snapshot go first
// (the snapshot covers them); if that is not enough, or there is no
// snapshot, everything goes and it reports true: a snapshot is owed.
// Caller holds r.mu.
func (r *Replicator) dropOnOverflowLocked() bool {
	size := func() int64 {
		var n int64
		for _, e := range r.pending {
			if e.MinTXID != 1 {
				n += e.Size
			}
		}
		return n
	}
	if !r.errActive || r.uploading || size() <= r.opts.SpoolMaxBytes {
		// A working replica drains any backlog; the bound is for outages.
		// While an upload is in flight the store may be back: dropping
		// then threw away what was about to be in the replica and owed a
		// needless snapshot (the uploader checks again if it fails).
		return false
	}
	last := -1
	for i, e := range r.pending {
		if e.MinTXID == 1 {
			last = i
		}
	}
	if last > 0 {
		for _, e := range r.pending[:last] {
			r.spool.release(e)
		}
		r.pending = slices.Delete(r.pending, 0, last)
		if size() <= r.opts.SpoolMaxBytes {
			return false
		}
	}
	for _, e := range r.pending {
		r.spool.release(e)
	}
	r.pending = nil
	r.overflowed = true
	return true
}
