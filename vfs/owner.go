package vfs

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/threads"
)

// The owner's side of the shared state (shared.go): it wakes on what
// other processes signal, and publishes its capture position and status
// after every step and every change of the replicator's state.

// merge adds the shared counters of other processes' gates (since this
// process took over) to this process's own.
func (db *DB) merge(ev Events) Events {
	ev.Restarts += db.sh.u64(offRestarts).Load() - db.shBase.Restarts
	ev.GateTimeouts += db.sh.u64(offGateTimeouts).Load() - db.shBase.GateTimeouts
	return ev
}

// publishStep records what the step that just ran leaves for other
// processes to see: the WAL position it captured to and, if it succeeded,
// that it served the sync requests and signals (req, seq) made before it
// started. Called by the capture goroutine.
func (db *DB) publishStep(req, seq uint32, err error) {
	db.publishStepLocked(req, seq, err)
	db.publish()
}

func (db *DB) publishStepLocked(req, seq uint32, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	// A step serves the requests made before it when it captured
	// everything on an unbroken chain (after a spool overflow or a lost
	// spool write the replica lacks files until a snapshot), or found that
	// nothing can be (the reason says why).
	served := err == nil && (db.reason != "" || (!db.needSnapshot && db.rep.Initialized()))
	p := &db.pub
	if served {
		p.StepReq, p.StepSeq = req, seq
		db.stepped = true
	}
	// Gates of other processes wait for this process's captures while it
	// replicates the WAL, whether or not it follows a generation now (a
	// truncated WAL is followed again once a frame is written).
	p.Following = db.stepped && db.reason == ""
	p.CapChange, p.ChangeKnown = db.capChange, db.changeKnown
	p.Salt1, p.Salt2, p.Frames = 0, 0, 0
	if db.fol.Following() {
		hdr := db.fol.Header()
		p.Salt1, p.Salt2 = hdr.Salt1, hdr.Salt2
		p.Frames = uint32((db.fol.Offset() - WALHeaderSize) / hdr.FrameSize())
	}
}

// publish writes the published position with the current status.
func (db *DB) publish() {
	st, rs := db.ownerStatus(Status{}, Events{})
	db.mu.Lock()
	p, foreignAt := db.pub, db.lastForeignAt
	db.mu.Unlock()
	p.TXID, p.ReplTXID = st.LocalTXID, st.ReplicatedTXID
	p.PendingBytes = uint32(min(st.PendingBytes, 1<<32-1))
	p.Reason, p.LastError = st.Reason, st.LastError
	if st.State == StateBehind {
		p.Reason = "" // published as ok: each process judges behind itself
	}
	p.ReplicaKnown = st.ReplicaFiles != nil
	if p.ReplicaKnown {
		p.ReplicaFiles, p.ReplicaBytes = uint64(rs.ReplicaFiles), uint64(rs.ReplicaBytes)
		p.LastSnapshotAt = unixNano(rs.LastSnapshotAt)
	}
	p.LastCompactionAt, p.CompactionError = unixNano(rs.LastCompactionAt), st.CompactionError
	p.ForeignTxns, p.LastForeignAt = uint64(max(st.ForeignTxns, 0)), unixNano(foreignAt)
	p.OldestPendingAt = unixNano(rs.OldestPending)
	switch st.State {
	case StateStopped:
		p.State, p.Following = sharedStopped, false
	case StateStarting:
		p.State = sharedStarting
	case StateOK, StateBehind:
		p.State = sharedOK
	case StateError:
		p.State = sharedError
	case StateNeedsSnapshot:
		p.State = sharedNeedsSnapshot
	default:
		p.State = sharedNotReplicating
	}
	db.sh.publish(p)
}

// publishLoop publishes every change of the replicator's state (an upload,
// a failure), so other processes' litestream_sync sees the replica catch up.
func (db *DB) publishLoop(ctx context.Context) {
	for {
		threads.Background()
		ch := db.rep.Changed()
		db.publish()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// watch wakes the capture loop when another process commits. It sleeps
// on the shared futex while nothing happens (no polling) and, after a wake,
// waits for the capture loop to finish a step before it sleeps again, so a
// busy writer in another process costs at most one wake per step.
func (db *DB) watch(ctx context.Context) {
	seq, waiting := db.sh.u32(offSeq), db.sh.u32(offOwnerWaiting)
	seen := seq.Load()
	for ctx.Err() == nil {
		threads.Background()
		waiting.Store(1)
		if seq.Load() == seen {
			futexWait(seq, seen, -1)
		}
		waiting.Store(0)
		cur := seq.Load()
		if cur == seen || ctx.Err() != nil {
			continue
		}
		seen = cur
		db.mu.Lock()
		ch := db.changed
		db.mu.Unlock()
		db.host.Notify()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(time.Second): // a step that never ends must not stop the watch
		}
	}
}

// watchUrgent ends the capture loop's coalescing pause, and the
// replicator's pacing, when another process waits: a sync request or a
// writer at a gate. Those are rare; each wakes this goroutine at once.
func (db *DB) watchUrgent(ctx context.Context) {
	urgent := db.sh.u32(offUrgent)
	seen := urgent.Load()
	for ctx.Err() == nil {
		threads.Background()
		futexWait(urgent, seen, -1)
		cur := urgent.Load()
		if cur == seen || ctx.Err() != nil {
			continue
		}
		seen = cur
		// A replicate=sync commit's target is a TXID this owner published as
		// captured; one beyond it is a stale mark (a chain started over).
		if s := db.sh.u64(offSyncTXID).Load(); s > 0 && s <= db.sh.u64(offCapTXID).Load() {
			db.rep.SyncTo(ltx.TXID(s))
		}
		db.rep.UrgeTo(ltx.TXID(db.sh.u64(offWantTXID).Load()))
		db.host.Poke()
	}
}

// ownerAlive reports whether the process that recorded itself as the owner
// still runs.
func ownerAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
