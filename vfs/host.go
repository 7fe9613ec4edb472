package vfs

import (
	"io"
	"time"
	"unsafe"
)

// Events mirrors the C shim's per-database counters.
type Events struct {
	Announced       uint64        // commits announced at WAL_WRITE unlock
	Acked           uint64        // announced commits acknowledged as captured (by Ack, or by the shim for frames Ack already covered)
	Restarts        uint64        // WAL restarts, truncates and deletes let through
	GateTimeouts    uint64        // gates that stopped waiting for the replicator
	NonWALWrites    uint64        // main-db writes while no WAL was open
	ExclusiveWrites uint64        // WAL writes without the WAL_WRITE shm lock
	SnapshotBroken  uint64        // db writes let through during a snapshot
	GateWaits       uint64        // times an app thread waited at a gate
	GateWait        time.Duration // total time app threads waited at gates
	MxFrame         uint32        // wal-index mxFrame published by the last announced commit
	Salt1, Salt2    uint32        // the WAL salts it belongs to
	EndMxFrame      uint32        // committed frames of a generation about to end
	EndSalt1        uint32        // its salts
	EndSalt2        uint32
	EndChange       uint32    // the wal-index change counter then
	RestartsDone    uint64    // this process's Restarts, counted once done
	Closes          uint64    // times the process's last main-db handle closed
	Closed          FileStamp // the database file at the last of them
	WALOpen         int       // WAL handles open now
	Conns           int       // main-db handles open now
	GateWaiters     int       // app threads waiting at a gate
	Shutdown        bool      // the process is exiting
	Sync            SyncEvents
}

// SyncEvents are the shim's counters of replicate=sync commits in this
// process (extension/syncwait.c).
type SyncEvents struct {
	Waits    uint64        // commits that waited for the replica
	Wait     time.Duration // their total wait
	Timeouts uint64        // of them, not confirmed within sync-timeout
	Degraded uint64        // while degraded: the TXID the replica must reach (0: not degraded)
	Refused  uint64        // write locks refused by on-timeout=block
}

// WALIndex is what the shim reads of SQLite's wal-index header.
type WALIndex struct {
	MxFrame      uint32 // committed frames of the generation
	Salt1, Salt2 uint32 // its salts
	Change       uint32 // iChange: bumped by every commit of any connection, across restarts
}

// FileStamp is what a stat says of a file's identity and last change.
type FileStamp struct {
	Ino          uint64
	Size         int64
	Mtime, Ctime int64 // ns
}

// DBFile reads the main database file without disturbing the host's locks.
type DBFile interface {
	io.ReaderAt
	Size() (int64, error)
	Close() error
}

// Host is what the C shim offers one database. Implementations must be
// safe for concurrent use.
type Host interface {
	// Wait blocks until the event version differs from seen, an app thread
	// waits at a gate, the process exits or timeout passes (<0: never).
	Wait(seen uint64, timeout time.Duration) (uint64, Events)
	// WaitGate blocks until an app thread waits at a gate, a checkpoint
	// starts (a WAL reset may follow), Poke is called, the process exits
	// or timeout passes, and returns the counters then.
	WaitGate(timeout time.Duration) Events
	// Poke makes a pending Wait or WaitGate return.
	Poke()
	// Notify makes a pending Wait return (not WaitGate: not urgent).
	Notify()
	// ShareState gives the shim the address of this process's mapping of
	// the shared state (shared.go), which stays mapped for the life of
	// the process.
	ShareState(addr unsafe.Pointer)
	// WALIndex reads SQLite's live wal-index header; ok is false if it is
	// not mapped or not stable.
	WALIndex() (idx WALIndex, ok bool)
	// Events returns the counters now.
	Events() Events
	// Ack tells waiting app threads that commits up to seq are captured,
	// and that the generation with salts (salt1, salt2) is captured up to
	// frames (0 if none is followed).
	Ack(seq uint64, salt1, salt2, frames uint32)
	// BeginSnapshot holds back checkpoint writes to the db file and WAL
	// resets; EndSnapshot releases them.
	BeginSnapshot()
	EndSnapshot()
	// HoldReadTxn starts a read transaction on a private connection so no
	// checkpointer (of any process) copies frames past it into the
	// database file; the returned func ends it.
	HoldReadTxn() (func(), error)
	// OpenDBFile opens the database file for reading.
	OpenDBFile() (DBFile, error)
	// SetAttached says whether gates should wait for this replicator.
	SetAttached(bool)
}
