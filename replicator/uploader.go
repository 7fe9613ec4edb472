package replicator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/replica"
)

// The uploader ships durable spool entries to the replica in TXID order,
// merging consecutive level-0 entries, within the PUT budget (putWait),
// retrying with backoff. Before its first upload it confirms where
// the replica stands (position.go).

// Bounds of one merged upload.
const (
	maxMergeFiles = 1024
	maxMergeBytes = 64 << 20
	mergeBufSize  = 256 << 10 // between the merging compactor and the upload
)

// nextBatch returns the entries the next upload covers: the first pending
// entry and, if it is a level-0 file, the contiguous level-0 files after
// it. Under load this turns many small spool records into one object.
func (r *Replicator) nextBatch() []*spoolEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	n, size := 1, r.pending[0].Size
	if r.pending[0].Level == 0 {
		for n < len(r.pending) && n < maxMergeFiles {
			e := r.pending[n]
			if e.Level != 0 || e.MinTXID != r.pending[n-1].MaxTXID+1 || size+e.Size > maxMergeBytes {
				break
			}
			size += e.Size
			n++
		}
	}
	return append([]*spoolEntry(nil), r.pending[:n]...)
}

func (r *Replicator) uploadLoop(ctx context.Context) {
	backoff := r.opts.RetryMin
	var lastPut time.Time
	p := pacer{floor: uploadFloor}
	for {
		opened, confirmed := r.openState()
		if !opened {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
			continue
		}
		if !confirmed {
			threads.Background()
			err := r.confirm(ctx)
			if err == nil {
				backoff = r.opts.RetryMin
				continue
			}
			if ctx.Err() != nil {
				return
			}
			r.uploadFailed(err)
			wait := r.retryWait(err, backoff)
			r.logger.Warn("replica position unknown: the store refused or did not answer; spooling meanwhile", "retry_in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-r.uploadUrge:
			case <-time.After(wait):
			}
			backoff = min(backoff*2, r.opts.RetryMax)
			continue
		}
		if r.nextBatch() == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
			continue
		}
		// Keep to the PUT budget; what queues meanwhile joins this
		// upload. Without a cap (a local directory), uploads are paced by
		// their cost under sustained load instead (see pacer).
		if r.puts != nil {
			if !r.putWait(ctx) {
				return
			}
		} else if !r.wanted(r.replicatedTXID()) && !p.wait(ctx, r.uploadUrge) {
			return
		}
		batch := r.nextBatch()
		if batch == nil {
			continue // dropped by a spool overflow meanwhile
		}
		if r.snapshotGone() {
			continue // confirm again first: the replica was emptied underneath
		}
		threads.Background()
		lastPut = time.Now()
		r.mu.Lock()
		r.uploading = true
		r.mu.Unlock()
		err := r.upload(ctx, batch)
		r.mu.Lock()
		r.uploading = false
		r.mu.Unlock()
		p.done(lastPut, txnCount(batch), time.Since(lastPut))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.uploadFailed(err)
			r.checkOverflow()
			wait := r.retryWait(err, backoff)
			r.logger.Warn("upload failed", "file", batchName(batch), "retry_in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			backoff = min(backoff*2, r.opts.RetryMax)
			continue
		}
		backoff = r.opts.RetryMin
	}
}

// putWait takes one PUT from the budget, waiting for it unless a
// replicate=sync commit waits (SyncTo: it goes at once, whatever the
// budget) or a caller waits for the replica (litestream_sync, a gate):
// then the PUT goes at once on credit, so the next ones wait longer and
// the sustained rate stays within the cap. The credit is bounded by the burst: a sync after
// every commit is served at the sustained rate once it is spent (at 1000
// txn/s with a sync loop, unbounded credit made 251 PUTs a second against
// a cap of 1). It reports whether ctx is still live.
func (r *Replicator) putWait(ctx context.Context) bool {
	credit := float64(r.puts.Burst())
	for {
		now := time.Now()
		tokens := r.puts.TokensAt(now)
		need := 1.0 // tokens needed before this PUT
		switch pos := r.replicatedTXID(); {
		case ltx.TXID(r.syncWant.Load()) > pos:
			need = math.Inf(-1) // a replicate=sync commit waits (SyncTo)
		case r.wanted(pos):
			need = 1 - credit
		}
		if tokens >= need {
			r.puts.ReserveN(now, 1)
			return ctx.Err() == nil
		}
		d := time.Duration((need - tokens) / float64(r.puts.Limit()) * float64(time.Second))
		r.budgetWait.Store(now.Add(d).UnixNano()) // status says why it is behind
		r.budgetHeld.Add(1)
		t := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			r.budgetWait.Store(0)
			return false
		case <-t.C:
		case <-r.uploadUrge:
			t.Stop()
		}
		r.budgetWait.Store(0)
	}
}

// retryWait is the pause before trying the store again after err: the
// backoff, or PermanentRetry for errors that wrap replica.ErrPermanent
// (bad credentials, a missing bucket), jittered.
func (r *Replicator) retryWait(err error, backoff time.Duration) time.Duration {
	if errors.Is(err, replica.ErrPermanent) {
		return jitter(r.opts.PermanentRetry)
	}
	return jitter(backoff)
}

// jitter spreads d by ±20% so that many clients retrying after a shared
// outage do not hit the store in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

func batchName(batch []*spoolEntry) string {
	return ltx.FormatFilename(batch[0].MinTXID, batch[len(batch)-1].MaxTXID)
}

// upload writes batch to the replica as one LTX file, merging several
// (merge.go: their compressed pages are copied, not compressed again; the
// spool records are this process's own, written and synced moments ago,
// and are not verified again).
func (r *Replicator) upload(ctx context.Context, batch []*spoolEntry) error {
	first, last := batch[0], batch[len(batch)-1]
	var src io.Reader
	if len(batch) == 1 {
		src = r.spool.reader(first)
	} else {
		ins := make([]mergeInput, len(batch))
		for i, e := range batch {
			ins[i] = mergeInput{r: r.spool.reader(e), size: e.Size}
		}
		pr := r.merged(ctx, ins, batchName(batch))
		defer pr.Close()
		src = pr
	}
	info, err := r.client.WriteLTXFile(ctx, first.Level, first.MinTXID, last.MaxTXID, src)
	if err != nil {
		return fmt.Errorf("write %s to replica: %w", batchName(batch), err)
	}
	info.Level, info.CreatedAt = first.Level, r.clock.Now()
	// The position is saved before the spool lets go of the batch: a
	// process killed in between leaves either the records or a position
	// at their end, and the next owner's confirm finds the replica at a
	// boundary it knows. (The other way round, a kill after the release
	// left a replica ahead of both: a full snapshot at the next open, and
	// with more kills the replica stopped advancing; found by an attack.)
	testHookUploaded(1, last.MaxTXID)
	kept := first.Level == 0 && first.MinTXID > 1 && r.keepsCopies()
	if kept {
		// Registered before the catalog lists the file, so a compaction
		// that plans it finds the copy.
		r.locked(func() { r.keepCopyLocked(batch) })
	}
	// Listed before the replicated position moves: a caller that sees it
	// finds the file in the catalog (compaction plans by it).
	r.cat.add(info)
	poke(r.compactWake)
	var replicated ltx.Pos
	r.locked(func() {
		// Remove the batch by identity: an overflow may have dropped it meanwhile.
		r.pending = slices.DeleteFunc(r.pending, func(e *spoolEntry) bool { return slices.Contains(batch, e) })
		if first.MinTXID == 1 {
			r.overflowed = false // a snapshot closes any gap
		}
		if last.MaxTXID > r.replicated.TXID {
			r.replicated = ltx.Pos{TXID: last.MaxTXID, PostApplyChecksum: last.Post}
		}
		r.uploads++
		r.upBytes += info.Size
		r.errActive = false
		replicated = r.replicated
	})
	r.savePosition(replicated)
	testHookUploaded(2, last.MaxTXID)
	r.locked(func() {
		if !kept {
			for _, e := range batch {
				r.spool.release(e)
			}
		}
		r.trimCopiesLocked()
		r.notifyLocked()
	})
	testHookUploaded(3, last.MaxTXID)
	return nil
}

// testHookUploaded runs at each step after the upload of a batch ending at
// txid returned (tests: a
// kill there).
var testHookUploaded = func(step int, txid ltx.TXID) {}

// snapshotGone reports, for a replica where checking is free (a local
// directory), whether the newest snapshot the catalog knows has gone; if
// so it makes the uploader confirm the replica again (recheck), which owes
// a snapshot when the chain is broken.
func (r *Replicator) snapshotGone() bool {
	lc, ok := r.client.(replica.LocalChecker)
	if !ok {
		return false
	}
	s, ok := r.cat.newest(replica.SnapshotLevel)
	if !ok {
		return false
	}
	exists, err := lc.Exists(s.Level, s.MinTXID, s.MaxTXID)
	if err != nil || exists {
		return false
	}
	r.recheck(fmt.Errorf("%s is gone from %s", replica.LTXFilePath(s.Level, s.MinTXID, s.MaxTXID), r.client))
	return true
}
