package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/version"
	"github.com/litestream-vfs/litestream_vfs/replicator"
)

// Status is what litestream_status() reports, as JSON.
type Status struct {
	DB             string `json:"db"`
	Replica        string `json:"replica"`
	State          string `json:"state"`
	LocalTXID      uint64 `json:"local_txid"`
	ReplicatedTXID uint64 `json:"replicated_txid"`
	PendingTxns    int64  `json:"pending_txns"`
	PendingBytes   int64  `json:"pending_bytes"`
	// LagMS is how long the oldest transaction not yet in the replica has
	// waited since its capture (0 when caught up): what to alert on.
	LagMS       int64   `json:"lag_ms"`
	LastError   string  `json:"last_error"`
	LastErrorAt string  `json:"last_error_at"`
	Reason      string  `json:"reason"`
	Uploads     int64   `json:"uploads"`      // objects written to the replica since the extension loaded
	Commits     uint64  `json:"commits"`      // commits observed since the extension loaded
	GateWaits   uint64  `json:"gate_waits"`   // times a writer waited for capture before a WAL reset
	GateWaitMS  float64 `json:"gate_wait_ms"` // total time writers waited there
	OwnerPID    int     `json:"owner_pid"`    // the process that replicates (0: none yet)

	// replicate=sync commits of this process (extension/syncwait.c).
	SyncWaits    uint64  `json:"sync_waits"`    // commits that waited for the replica
	SyncWaitMS   float64 `json:"sync_wait_ms"`  // their total wait
	SyncTimeouts uint64  `json:"sync_timeouts"` // of them, not confirmed within sync-timeout
	SyncRefused  uint64  `json:"sync_refused"`  // write transactions refused by on-timeout=block

	// Counters of the process that replicates, since it started to (0 in
	// the others).
	UploadedBytes      int64            `json:"uploaded_bytes"`          // bytes of the objects the uploader wrote
	UploadErrors       map[string]int64 `json:"upload_errors,omitempty"` // failed attempts to reach the store, by kind (replicator.ErrorKind)
	SpoolBytes         int64            `json:"spool_bytes"`             // the spool's segments on disk
	Compactions        int64            `json:"compactions"`             // files written by compaction
	Snapshots          int64            `json:"snapshots"`               // full snapshots read from the database
	CompactedSnapshots int64            `json:"compacted_snapshots"`     // snapshots built from the replica's own files

	Version string `json:"version"` // this build of the extension (git describe)

	// The replica as the owner's bookkeeping knows it (no LIST per call;
	// other processes read what the owner published in the shared state).
	ReplicaFiles     *int   `json:"replica_files,omitempty"`
	ReplicaBytes     *int64 `json:"replica_bytes,omitempty"`
	LastSnapshotAt   string `json:"last_snapshot_at,omitempty"`
	LastCompactionAt string `json:"last_compaction_at,omitempty"`
	CompactionError  string `json:"compaction_error,omitempty"`
	// Commits found in the WAL that no extension announced (a writer
	// without the extension), replicated; counted by the owner. An
	// estimate: an announcement that comes more than 50 ms after its
	// commit was captured is counted too.
	ForeignTxns     int64  `json:"foreign_txns,omitempty"`
	LastForeignTxAt string `json:"last_foreign_txn_at,omitempty"`
}

// Status returns the replication status. In the process that replicates
// it is this process's view; in any other it is what the owner published
// in the shared state, and "behind" while a signal of any process (a
// commit) is newer than the owner's last completed step.
func (db *DB) Status() Status {
	st := Status{DB: db.cfg.Path, Replica: db.cfg.Replica.String(), OwnerPID: db.sh.ownerPID(), Version: version.Version}
	ev := db.host.Events()
	st.Commits, st.GateWaits = ev.Announced, ev.GateWaits
	st.GateWaitMS = float64(ev.GateWait) / float64(time.Millisecond)
	if !db.owner.Load() {
		st = db.sharedStatus(st)
	} else {
		st, _ = db.ownerStatus(st, ev)
	}
	syncStatus(&st, ev.Sync)
	return st
}

// ownerStatus fills st in the process that replicates, and returns the
// replicator's status it was made from. ev are the shim's counters;
// publish passes none (it needs no more than the replicator's view, and
// the shim's mutex is the writers' on every commit).
func (db *DB) ownerStatus(st Status, ev Events) (Status, replicator.Status) {
	db.mu.Lock()
	reason, lastErr, lastErrAt, pending, errActive, stepped := db.reason, db.lastErr, db.lastErrAt, db.pending, db.errActive, db.stepped
	stepSeq := db.pub.StepSeq
	capChange, changeKnown := db.pub.CapChange, db.pub.ChangeKnown
	st.ForeignTxns, st.LastForeignTxAt = db.foreignTxns, formatTime(db.lastForeignAt)
	db.mu.Unlock()
	rs := db.rep.Status()
	st.LocalTXID, st.ReplicatedTXID = uint64(rs.LocalTXID), uint64(rs.ReplicatedTXID)
	st.PendingTxns, st.PendingBytes = rs.PendingTXNs, rs.PendingBytes
	st.LagMS = lagMS(rs.OldestPending)
	st.Uploads, st.UploadedBytes, st.UploadErrors, st.SpoolBytes = rs.Uploads, rs.UploadedBytes, rs.UploadErrors, rs.SpoolBytes
	st.Compactions, st.Snapshots, st.CompactedSnapshots = rs.Compactions, db.snapshots.Load(), rs.Snapshots
	if rs.Confirmed {
		st.ReplicaFiles, st.ReplicaBytes = &rs.ReplicaFiles, &rs.ReplicaBytes
		st.LastSnapshotAt = formatTime(rs.LastSnapshotAt)
	}
	st.LastCompactionAt, st.CompactionError = formatTime(rs.LastCompactionAt), rs.CompactionError
	errAt := lastErrAt
	if rs.LastError != "" && rs.LastErrorAt.After(errAt) {
		st.LastError, errAt = rs.LastError, rs.LastErrorAt
	} else if lastErr != nil {
		st.LastError = lastErr.Error()
	}
	if !errAt.IsZero() {
		st.LastErrorAt = errAt.UTC().Format(time.RFC3339Nano)
	}
	if reason == "" && ev.WALOpen > 0 && ev.ExclusiveWrites != db.exclSeen.Load() {
		reason = reasonExclusive // seen by the shim, not yet by a step
	}
	stopAt, stopCause := db.stop.Cause() // the replicator's Stop too
	switch {
	case stopCause != nil:
		st.State, st.Reason = StateStopped, ErrStopped.Error()
		st.LastError, st.LastErrorAt = stopCause.Error(), formatTime(stopAt)
		if p, err := db.sh.load(); err == nil {
			// The positions as last published: the replicator's lock may
			// be held by the goroutine that panicked.
			st.LocalTXID, st.ReplicatedTXID = p.TXID, p.ReplTXID
			st.PendingTxns, st.PendingBytes = int64(p.TXID)-int64(p.ReplTXID), int64(p.PendingBytes)
		}
	case reason != "":
		st.State, st.Reason = StateNotReplicating, reason
	case rs.NeedsSnapshot: // the spool overflowed during an outage
		st.State, st.Reason = StateNeedsSnapshot, reasonOverflow
	case errActive || rs.ErrorActive:
		st.State = StateError
	case ev != (Events{}) && ev.WALOpen == 0 && db.notWAL():
		// In a rollback-journal mode (never switched to WAL, or switched
		// away by a writer without the extension while no connection
		// here was open) and no step has looked yet: its commits reach
		// no replica.
		st.State, st.Reason = StateNotReplicating, reasonNotWAL
		db.host.Notify()
	case !stepped || !rs.Confirmed:
		// The local or the replica's position is not known yet.
		st.State = StateStarting
	case pending:
		st.State, st.Reason = StateNeedsSnapshot, reasonSnapshotDue
	case st.ReplicatedTXID < st.LocalTXID:
		st.State = StateBehind
		if !rs.BudgetWait.IsZero() {
			st.Reason = fmt.Sprintf("waiting for the PUT budget (max-puts-per-second=%g, put-burst=%d): the next upload in %v",
				db.cfg.MaxPutsPerSecond, max(db.cfg.PutBurst, 1), time.Until(rs.BudgetWait).Round(time.Millisecond))
		}
	case ev.Acked < ev.Announced || db.sh.u32(offSeq).Load() != stepSeq:
		// A commit (of this process or another) not yet captured.
		st.State, st.Reason = StateBehind, reasonUncaptured
	case ev.Conns > 0 && ev.Closes != db.closesChecked.Load() && changedSince(db.cfg.Path, ev.Closed) != "":
		// Opened again after another process changed the file while
		// this one had it closed, and no step has checked it yet: what
		// that process committed may be in no replica.
		st.State, st.Reason = StateBehind, reasonReopened
		db.host.Notify()
	case ev != (Events{}) && db.uncaptured(capChange, changeKnown):
		// SQLite's wal-index counts a commit no step has captured (a
		// writer without the extension announces nothing).
		st.State, st.Reason = StateBehind, reasonUncaptured
		db.host.Notify()
	case ev != (Events{}) && db.walChanged():
		// A writer without the extension announces nothing: the WAL
		// changed since the last step began. (publish passes no events
		// and skips this stat: it runs after every upload.)
		st.State, st.Reason = StateBehind, reasonUncaptured
	default:
		st.State = StateOK
	}
	return st, rs
}

// Reasons of states that are not ok, for status.
const (
	reasonUncaptured  = "a commit is not yet captured by the replicating process"
	reasonOverflow    = "the spool overflowed while the replica was unreachable: a snapshot ships once it answers"
	reasonSnapshotDue = "a snapshot is due (the chain of spooled changes broke) and is not in the replica yet"
)

// reasonReopened says why status is behind right after a reopen.
const reasonReopened = "the database changed while this process had it closed; checking it against the replica"

// lagMS is the time since oldest in milliseconds, 0 for the zero time.
func lagMS(oldest time.Time) int64 {
	if oldest.IsZero() {
		return 0
	}
	return max(time.Since(oldest).Milliseconds(), 0)
}

// sharedStatus fills st from the owner's published state.
func (db *DB) sharedStatus(st Status) Status {
	p, err := db.sh.load()
	switch {
	case err != nil:
		st.State, st.Reason = StateStarting, err.Error()
		return st
	case st.OwnerPID == 0:
		st.State, st.Reason = StateStarting, "no process replicates this database yet"
		return st
	case !ownerAlive(st.OwnerPID):
		st.State, st.Reason = StateStarting, fmt.Sprintf("the replicating process (pid %d) is gone; another process takes over", st.OwnerPID)
		return st
	}
	st.State = sharedStateName(p.State)
	st.Reason, st.LastError = p.Reason, p.LastError
	st.LocalTXID, st.ReplicatedTXID = p.TXID, p.ReplTXID
	if p.TXID > p.ReplTXID {
		st.PendingTxns = int64(p.TXID - p.ReplTXID)
	}
	st.PendingBytes = int64(p.PendingBytes)
	if p.OldestPendingAt != 0 {
		st.LagMS = lagMS(time.Unix(0, p.OldestPendingAt))
	}
	if p.ReplicaKnown {
		files, bytes := int(p.ReplicaFiles), int64(p.ReplicaBytes)
		st.ReplicaFiles, st.ReplicaBytes = &files, &bytes
		st.LastSnapshotAt = formatNano(p.LastSnapshotAt)
	}
	st.LastCompactionAt, st.CompactionError = formatNano(p.LastCompactionAt), p.CompactionError
	st.ForeignTxns, st.LastForeignTxAt = int64(p.ForeignTxns), formatNano(p.LastForeignAt)
	uncaptured := fmt.Sprintf("%s (pid %d)", reasonUncaptured, st.OwnerPID)
	switch {
	case st.State != StateOK:
	case db.uncaptured(p.CapChange, p.ChangeKnown):
		st.State, st.Reason = StateBehind, uncaptured
		db.sh.signal(false) // the owner's next step captures it
	case p.ReplTXID < p.TXID:
		st.State = StateBehind
	case db.sh.u32(offSeq).Load() != p.StepSeq:
		// A commit or request of some process, signalled since the
		// owner's last step (an owner that stays this way is stuck:
		// stopped with SIGSTOP, say).
		st.State, st.Reason = StateBehind, uncaptured
	}
	return st
}

// uncaptured reports whether this process's view of SQLite's wal-index
// counts a commit past the position captured (change, if known): one of a
// writer without the extension, which signals nothing, say.
func (db *DB) uncaptured(change uint32, known bool) bool {
	if !known {
		return false
	}
	idx, ok := db.host.WALIndex()
	return ok && idx.Change != change
}

// Sync waits until every transaction committed before the call, by any
// process, is durable in the replica and returns the TXID that covers it.
// It works the same in every process: it files a numbered request in the
// shared state, waits for a capture step of the owner that started after
// it (such a step reads everything committed before it started), then for
// the replica to hold that step's TXID.
func (db *DB) Sync(ctx context.Context) (ltx.TXID, error) {
	if db.halted.Load() {
		return 0, fmt.Errorf("%w: %s", ErrNotReplicating, db.Status().Reason)
	}
	req := db.sh.request()
	if db.owner.Load() {
		db.host.Poke() // end a coalescing pause: someone waits
	}
	p, err := db.sh.waitPub(ctx, func(p sharedPos) bool { return serialGE(p.StepReq, req) || p.State == sharedStopped })
	if err != nil {
		return 0, db.syncErr(err)
	}
	if p.State == sharedStopped {
		return 0, stoppedErr(p)
	}
	if p.State == sharedNotReplicating {
		if p.Reason == reasonEmpty {
			return 0, nil // nothing committed yet
		}
		return 0, fmt.Errorf("%w: %s", ErrNotReplicating, p.Reason)
	}
	target := p.TXID
	if db.owner.Load() {
		db.rep.UrgeTo(ltx.TXID(target))
	} else {
		db.sh.want(target) // the owner's committer and uploader stop pacing
	}
	p, err = db.sh.waitPub(ctx, func(p sharedPos) bool { return p.ReplTXID >= target || p.State == sharedStopped })
	if err != nil {
		return 0, db.syncErr(err)
	}
	if p.State == sharedStopped {
		return 0, stoppedErr(p)
	}
	return ltx.TXID(target), nil
}

// stoppedErr is Sync's error once the owner published that a panic
// stopped replication.
func stoppedErr(p sharedPos) error {
	return fmt.Errorf("%w (in the replicating process: %s; replicated TXID %d, local TXID %d)", ErrStopped, p.LastError, p.ReplTXID, p.TXID)
}

func (db *DB) syncErr(err error) error {
	st := db.Status()
	msg := fmt.Sprintf("state %s, local TXID %d, replicated TXID %d, %d transactions (%d bytes) pending",
		st.State, st.LocalTXID, st.ReplicatedTXID, st.PendingTxns, st.PendingBytes)
	if st.Reason != "" {
		msg += "; " + st.Reason
	}
	if st.LastError != "" {
		msg += "; last error: " + st.LastError
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out: %s", msg)
	}
	return fmt.Errorf("%w: %s", err, msg)
}

// formatNano is formatTime of a time in Unix nanoseconds (0: none), as
// the shared state holds times.
func formatNano(ns int64) string {
	if ns == 0 {
		return ""
	}
	return formatTime(time.Unix(0, ns))
}

// unixNano is t as the shared state holds times (0 for the zero time).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// formatTime is t as status reports times ("" for the zero time).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
