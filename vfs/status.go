package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/superfly/ltx"
)

// Status is what litestream_status() reports, as JSON.
type Status struct {
	DB             string  `json:"db"`
	Replica        string  `json:"replica"`
	State          string  `json:"state"`
	LocalTXID      uint64  `json:"local_txid"`
	ReplicatedTXID uint64  `json:"replicated_txid"`
	PendingTxns    int64   `json:"pending_txns"`
	PendingBytes   int64   `json:"pending_bytes"`
	LastError      string  `json:"last_error"`
	LastErrorAt    string  `json:"last_error_at"`
	Reason         string  `json:"reason"`
	Uploads        int64   `json:"uploads"`      // objects written to the replica since the extension loaded
	Commits        uint64  `json:"commits"`      // commits observed since the extension loaded
	GateWaits      uint64  `json:"gate_waits"`   // times a writer waited for capture before a WAL reset
	GateWaitMS     float64 `json:"gate_wait_ms"` // total time writers waited there
}

// Status returns the replication status.
func (db *DB) Status() Status {
	st := Status{DB: db.cfg.Path, Replica: db.cfg.Replica.String()}
	ev := db.host.Events()
	st.Commits, st.GateWaits = ev.Announced, ev.GateWaits
	st.GateWaitMS = float64(ev.GateWait) / float64(time.Millisecond)
	db.mu.Lock()
	reason, lastErr, lastErrAt, pending, errActive := db.reason, db.lastErr, db.lastErrAt, db.pending, db.errActive
	db.mu.Unlock()
	if !db.owner.Load() {
		st.State, st.Reason = StateNotReplicating, reason
		return st
	}
	rs := db.rep.Status()
	st.LocalTXID, st.ReplicatedTXID = uint64(rs.LocalTXID), uint64(rs.ReplicatedTXID)
	st.PendingTxns, st.PendingBytes = rs.PendingTXNs, rs.PendingBytes
	st.Uploads = rs.Uploads
	errAt := lastErrAt
	if rs.LastError != "" && rs.LastErrorAt.After(errAt) {
		st.LastError, errAt = rs.LastError, rs.LastErrorAt
	} else if lastErr != nil {
		st.LastError = lastErr.Error()
	}
	if !errAt.IsZero() {
		st.LastErrorAt = errAt.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case reason != "":
		st.State, st.Reason = StateNotReplicating, reason
	case rs.NeedsSnapshot: // the spool overflowed during an outage
		st.State = StateNeedsSnapshot
	case errActive || rs.ErrorActive:
		st.State = StateError
	case pending:
		st.State = StateNeedsSnapshot
	case st.ReplicatedTXID < st.LocalTXID:
		st.State = StateBehind
	default:
		st.State = StateOK
	}
	return st
}

// Sync waits until every transaction committed before the call is durable
// in the replica and returns the TXID that covers it.
func (db *DB) Sync(ctx context.Context) (ltx.TXID, error) {
	if !db.owner.Load() {
		return 0, fmt.Errorf("%w: %s", ErrNotReplicating, db.Status().Reason)
	}
	target := db.host.Events().Announced
	poked := false
	for {
		// The shim acknowledges commits whose frames a step already read
		// without waking the capture loop; those count as captured unless
		// a step failed since (a snapshot is pending). Events first: see
		// the end of step.
		acked := db.host.Events().Acked
		db.mu.Lock()
		captured, reason, ch, pending := db.captured, db.reason, db.changed, db.pending
		db.mu.Unlock()
		if !pending && acked > captured {
			captured = acked
		}
		if reason == reasonEmpty {
			return 0, nil // nothing committed yet
		}
		if reason != "" {
			return 0, fmt.Errorf("%w: %s", ErrNotReplicating, reason)
		}
		if captured >= target {
			break
		}
		if !poked {
			db.host.Poke() // end a coalescing pause: someone waits
			poked = true
		}
		select {
		case <-ctx.Done():
			return 0, db.syncErr(ctx.Err())
		case <-ch:
		}
	}
	txid := db.rep.Pos().TXID
	if err := db.rep.WaitReplicated(ctx, txid); err != nil {
		return 0, db.syncErr(err)
	}
	return txid, nil
}

func (db *DB) syncErr(err error) error {
	st := db.Status()
	msg := fmt.Sprintf("state %s, local TXID %d, replicated TXID %d, %d transactions (%d bytes) pending",
		st.State, st.LocalTXID, st.ReplicatedTXID, st.PendingTxns, st.PendingBytes)
	if st.LastError != "" {
		msg += "; last error: " + st.LastError
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out: %s", msg)
	}
	return fmt.Errorf("%w: %s", err, msg)
}
