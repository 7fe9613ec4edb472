package replicator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// Where the replica stands. Capture and spool never need the store: Open
// takes the local position from the spool and from the position file (the
// last position an upload made durable in the replica, saved after every
// upload). The uploader confirms it with the store before its first upload
// (confirm) and only then trusts it; until then the replicated position is
// reported as unknown (0).

// openWait bounds how long Open asks the store for its position when no
// position file exists (a first start): it only saves a snapshot, and a
// store that does not answer in time is asked again by the uploader.
const openWait = 500 * time.Millisecond

// replicaPos returns the position of the newest file in the replica, at
// any level (compaction may have expired the level-0 file that reached
// it), and the listing it found.
func (r *Replicator) replicaPos(ctx context.Context) (ltx.Pos, compact.Levels, error) {
	lv, err := listLevels(ctx, r.client)
	if err != nil {
		return ltx.Pos{}, lv, err
	}
	var best *ltx.FileInfo
	for _, infos := range lv {
		if n := len(infos); n > 0 && (best == nil || infos[n-1].MaxTXID > best.MaxTXID) {
			best = infos[n-1]
		}
	}
	if best == nil {
		return ltx.Pos{}, lv, nil
	}
	rc, err := r.client.OpenLTXFile(ctx, best.Level, best.MinTXID, best.MaxTXID)
	if err != nil {
		return ltx.Pos{}, lv, fmt.Errorf("open replica file: %w", err)
	}
	defer rc.Close()
	post, err := trailerOf(rc)
	if err != nil {
		return ltx.Pos{}, lv, fmt.Errorf("read replica file %s: %w", ltx.FormatFilename(best.MinTXID, best.MaxTXID), err)
	}
	if post == 0 {
		// A file without checksums: the position file left by the last
		// upload knows the checksum if it names the same TXID; otherwise
		// the checksum stays unknown and the next capture snapshots.
		if saved, err := r.loadPosition(); err == nil && saved.TXID == best.MaxTXID {
			post = saved.PostApplyChecksum
		}
	}
	return ltx.Pos{TXID: best.MaxTXID, PostApplyChecksum: post}, lv, nil
}

// positionPath is where the last replicated position is kept.
func (r *Replicator) positionPath() string { return filepath.Join(r.spool.dir, "position") }

func (r *Replicator) loadPosition() (ltx.Pos, error) {
	b, err := os.ReadFile(r.positionPath())
	if err != nil {
		return ltx.Pos{}, err
	}
	return ltx.ParsePos(strings.TrimSpace(string(b)))
}

// savePosition records pos (best effort, no fsync: the uploader confirms
// it with the store before trusting it, and a missing, torn or stale file
// only costs a question to the store at open, or a snapshot). The record
// has a fixed length and is overwritten in place through a descriptor kept
// open: a temporary file renamed over it after every upload cost a file
// creation, and on ext4 a data flush (auto_da_alloc), each time: a tenth
// of the owner's CPU under load.
func (r *Replicator) savePosition(pos ltx.Pos) {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	first := r.posFile == nil
	if first {
		f, err := os.OpenFile(r.positionPath(), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		r.posFile = f
	}
	b := []byte(pos.String() + "\n")
	if _, err := r.posFile.WriteAt(b, 0); err == nil && first {
		_ = r.posFile.Truncate(int64(len(b))) // whatever was longer before
	}
}

// closePosition closes the position file's descriptor.
func (r *Replicator) closePosition() {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	if r.posFile != nil {
		_ = r.posFile.Close()
		r.posFile = nil
	}
}

// confirm asks the store for its position and reconciles the local view
// with it, before the first upload after Open:
//
//   - the replica is where the position file says, or at a file boundary
//     inside the spool (the file was stale: an upload landed after it was
//     saved): what the replica has is dropped from the spool, the rest
//     ships as LTX history;
//   - otherwise the replica moved (another writer, a restore elsewhere, a
//     replica emptied or replaced): the spool cannot continue it. It is
//     dropped, TXIDs go on past both positions, and a snapshot is owed.
//
// confirmTimeout bounds the listing that confirms the replica's position.
var confirmTimeout = 35 * time.Second

func (r *Replicator) confirm(ctx context.Context) error {
	// One attempt of the store client (its request timeout, 30 s, with
	// room to spare), not its retries too: a store that accepts
	// connections and never answers left the state "starting", with no
	// error, for 90 s (found by an attack).
	lctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	rp, lv, err := r.replicaPos(lctx)
	cancel()
	if err != nil {
		return err
	}
	r.cat.set(lv, r.clock.Now())
	poke(r.compactWake) // what a killed owner left may be due now
	r.removePartial(ctx)
	var moved bool
	var local ltx.Pos
	r.locked(func() { moved, local = r.confirmLocked(rp, &lv) })
	if moved {
		r.breakChain("the replica is not where this database left it (written elsewhere, restored, emptied?); a snapshot will follow",
			fmt.Errorf("replica at TXID %d, local position TXID %d", rp.TXID, local.TXID))
	}
	return nil
}

// testHookConfirm runs inside confirm's locked section (tests: a panic
// there must not leave r.mu held).
var testHookConfirm func()

// confirmLocked applies the replica's position rp (listing lv) to the
// spool and the positions; moved reports that the replica is not where
// this database left it (local). Caller holds r.mu.
func (r *Replicator) confirmLocked(rp ltx.Pos, lv *compact.Levels) (moved bool, local ltx.Pos) {
	if testHookConfirm != nil {
		testHookConfirm()
	}
	local = r.pos
	boundary := rp.TXID == r.replicated.TXID
	for _, e := range r.pending {
		boundary = boundary || e.MaxTXID == rp.TXID
	}
	for _, e := range slices.Concat(r.syncing, r.queue) {
		boundary = boundary || e.MaxTXID == rp.TXID
	}
	// A replica whose files no longer chain from a snapshot to its newest
	// file (emptied or partly deleted underneath) cannot be continued
	// either, even at the right TXID.
	broken := rp.TXID > 0 && !restorable(lv, rp.TXID)
	moved = !boundary || rp.TXID > local.TXID || broken
	if moved && (rp.TXID == 0 || broken) && r.restartFromSnapshotLocked(rp.TXID) {
		// An empty or broken replica behind a snapshot in the spool: that
		// snapshot starts the chain again; the copies' files are gone.
		moved = false
		r.dropCopiesLocked(nil)
	}
	if moved {
		for _, e := range r.pending {
			r.spool.release(e)
		}
		for _, e := range r.queue {
			r.spool.release(e)
		}
		r.pending, r.queue = nil, nil
		r.dropCopiesLocked(nil) // of files the replica no longer has
		if rp.TXID > r.pos.TXID {
			r.pos = ltx.Pos{TXID: rp.TXID}
		}
		r.durable = r.pos
	} else {
		r.pending = slices.DeleteFunc(r.pending, func(e *spoolEntry) bool {
			if e.MaxTXID <= rp.TXID {
				r.spool.release(e)
				return true
			}
			return false
		})
	}
	if moved {
		r.epoch++
	}
	r.replicated = rp
	r.confirmed = true
	r.notifyLocked()
	return moved, local
}

// restartFromSnapshotLocked looks for a snapshot past txid among the files
// captured but not uploaded, in order: durable (pending), being made
// durable by the committer (syncing) or still written only (queue). If it
// finds one, what precedes it is dropped (released, or for the committer's
// batch left in an older epoch, which it releases) and it reports true.
// Caller holds r.mu.
func (r *Replicator) restartFromSnapshotLocked(txid ltx.TXID) bool {
	isSnap := func(e *spoolEntry) bool { return e.MinTXID == 1 && e.MaxTXID > txid }
	if i := slices.IndexFunc(r.pending, isSnap); i >= 0 {
		for _, e := range r.pending[:i] {
			r.spool.release(e)
		}
		r.pending = slices.Delete(r.pending, 0, i)
		return true
	}
	inSync := slices.IndexFunc(r.syncing, isSnap)
	inQueue := slices.IndexFunc(r.queue, isSnap)
	if inSync < 0 && inQueue < 0 {
		return false
	}
	for _, e := range r.pending {
		r.spool.release(e)
	}
	r.pending = nil
	r.epoch++
	if inSync >= 0 {
		for _, e := range r.syncing[inSync:] {
			e.epoch = r.epoch
		}
	} else {
		for _, e := range r.queue[:inQueue] {
			r.spool.release(e)
		}
		r.queue = slices.Delete(r.queue, 0, inQueue)
	}
	for _, e := range r.queue {
		e.epoch = r.epoch
	}
	return true
}

// removePartial removes what uploads of a killed owner left in the replica
// (replica.PartialRemover). It runs before this process's first upload,
// so none of its own is in flight. A failure is only logged: partial
// objects are never read as LTX files.
func (r *Replicator) removePartial(ctx context.Context) {
	pr, ok := r.client.(replica.PartialRemover)
	if !ok {
		return
	}
	n, err := pr.RemovePartial(ctx)
	if err != nil && ctx.Err() == nil {
		r.logger.Warn("could not remove partial uploads from the replica", "removed", n, "err", err)
	} else if n > 0 {
		r.logger.Info("removed partial uploads a killed process left in the replica", "removed", n)
	}
}

// restorable reports whether the listing has a chain of files from a
// snapshot to txid (the chain compaction's plans follow).
func restorable(lv *compact.Levels, txid ltx.TXID) bool {
	plan := compact.LatestPlan(lv)
	return len(plan) > 0 && plan[len(plan)-1].MaxTXID == txid
}

// recheck makes the uploader confirm the replica's position again before
// its next upload: something it relied on is missing (a compaction input
// was not found), so the replica may have been emptied or changed
// underneath; confirm then finds out and owes a snapshot if so.
func (r *Replicator) recheck(why error) {
	r.mu.Lock()
	was := r.confirmed
	r.confirmed = false
	r.notifyLocked()
	r.mu.Unlock()
	if was {
		r.logger.Warn("a file the replica should hold is missing; checking the replica", "err", why)
	}
	poke(r.wake)
}
