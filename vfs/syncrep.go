package vfs

import (
	"fmt"
	"time"
)

// StateDegraded: a replicate=sync commit of this process was not
// confirmed within its sync-timeout; until the replica holds what it
// waited for, such commits return at once (on-timeout=block: write
// transactions fail with SQLITE_BUSY instead).
const StateDegraded = "degraded"

// syncStatus adds this process's replicate=sync counters (the shim's,
// extension/syncwait.c) to st and says degraded while the shim is: the
// mark is cleared at the next commit once the replica holds it, so a
// replica that holds it already reads as caught up here.
func syncStatus(st *Status, ev SyncEvents) {
	st.SyncWaits, st.SyncTimeouts, st.SyncRefused = ev.Waits, ev.Timeouts, ev.Refused
	st.SyncWaitMS = float64(ev.Wait) / float64(time.Millisecond)
	if ev.Degraded == 0 || st.ReplicatedTXID >= ev.Degraded || st.State == StateStopped || st.State == StateNotReplicating {
		return
	}
	why := fmt.Sprintf("replicate=sync: a commit was not confirmed within sync-timeout; until the replica holds TXID %d, this process's replicate=sync commits return at once, and its on-timeout=block connections refuse writes with SQLITE_BUSY", ev.Degraded)
	if st.Reason != "" {
		why += "; replication is " + st.State + ": " + st.Reason
	} else if st.State != StateOK && st.State != StateBehind {
		why += "; replication is " + st.State
	}
	st.State, st.Reason = StateDegraded, why
}
