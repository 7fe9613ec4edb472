package vfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shared state of one database: the file <state dir>/shared, 4 KiB,
// mapped MAP_SHARED by every process on the host that opened the database
// with the extension (Go here, the C shim through the same mapping; the
// layout is struct lsShared in extension/shim.h). It is how the processes
// that do not replicate tell the owner (the process holding the
// replication lock) that they committed, hold their WAL resets until the
// owner captured, and answer litestream_sync and litestream_status.
//
// It holds no durable state: the spool and the replica do. A new owner
// re-initialises the position block at take-over, and a torn write of a
// killed owner (an odd seqlock) is detected by readers, which then report
// the position as unknown.
//
// Words, all host byte order (every process is on this host):
//
//	off  size  field          written by
//	  0   4    magic "LSS1"   whoever creates the file
//	  4   4    version (1)
//	  8   4    seq            every non-owner shim at each commit; sync requests and gate waits (futex)
//	 12   4    ownerWaiting   the owner's watcher: 1 while it sleeps on seq; the waker clears it
//	 16   4    urgent         gate waiters and sync requests: end the owner's coalescing pause (futex)
//	 20   4    pub            the owner, after every publish (futex)
//	 24   4    pubWaiters     processes sleeping on pub
//	 28   4    ownerPID       the owner, at take-over
//	 32   8    restarts       non-owner gates: WAL resets let through
//	 40   8    gateTimeouts   non-owner gates that gave up waiting
//	 48   4    syncReq        sync requests, numbered
//	 52   4    lock           seqlock over 56..(end of strings): odd while the owner writes
//	 56   4    capSalt1       the owner: WAL generation followed and frames captured of it
//	 60   4    capSalt2
//	 64   4    capFrames
//	 68   4    following      1 while the owner captures the WAL (non-owner gates wait only then)
//	 72   8    capTXID        local TXID after the last completed step
//	 80   8    replTXID       TXID durable in the replica
//	 88   4    stepReq        syncReq read at the start of the last completed step
//	 92   4    stepSeq        seq read at the start of the last completed step
//	 96   4    state          sharedStarting, …
//	100   4    pendingBytes   bytes waiting for the replica (saturated at 4 GiB-1)
//	104 256    reason         NUL-padded
//	360 256    lastError      NUL-padded
//	616   8    wantTXID       processes waiting in litestream_sync: the highest TXID they wait for
//	624   4    commitLock     seqlock over 628..639: odd while a non-owner's shim writes
//	628   4    commitSalt1    non-owner shims, at each commit (WAL_WRITE held): the wal-index
//	632   4    commitSalt2    header then, so the owner trusts those frames without checking
//	636   4    commitFrames   their checksums (it may have no wal-index mapped itself)
//
// Go only (past the shim's struct), written by the owner under the seqlock
// at 52 with the position block: the replica as its bookkeeping knows it,
// for litestream_status in every process.
//
//	640   8    replicaFiles      objects in the replica
//	648   8    replicaBytes      their bytes
//	656   8    lastSnapshotAt    the newest snapshot's creation (Unix ns; 0: none)
//	664   8    lastCompactionAt  the last compaction (Unix ns; 0: none since the owner took over)
//	672   4    flags             bit 0: replicaFiles/Bytes/lastSnapshotAt are known (the store confirmed)
//	676 256    compactionError   NUL-padded
//	936   8    foreignTxns       transactions of writers without the extension the owner replicated
//	944   8    lastForeignAt     the last of them (Unix ns)
//	952 256    ownerReplica      the owner's replica URL, NUL-padded (set at take-over)
//	1208  8    oldestPendingAt   capture time of the oldest transaction not yet in the replica (Unix ns; 0: none)
//	1216  4    capChange         SQLite's wal-index change counter at the position captured
//	1220  4    changeKnown       1 if capChange holds
//
// The shim's again (struct lsShared):
//
//	1224  8    syncTXID       replicate=sync commits waiting: the highest TXID they wait for
//	                          (the owner's uploader ships it outside the PUT budget)
const (
	sharedSize    = 4096
	sharedMagic   = 0x3153534c // "LSS1" little-endian
	sharedVersion = 1

	offMagic        = 0
	offVersion      = 4
	offSeq          = 8
	offOwnerWaiting = 12
	offUrgent       = 16
	offPub          = 20
	offPubWaiters   = 24
	offOwnerPID     = 28
	offRestarts     = 32
	offGateTimeouts = 40
	offSyncReq      = 48
	offLock         = 52
	offCapSalt1     = 56
	offCapSalt2     = 60
	offCapFrames    = 64
	offFollowing    = 68
	offCapTXID      = 72
	offReplTXID     = 80
	offStepReq      = 88
	offStepSeq      = 92
	offState        = 96
	offPendingBytes = 100
	offReason       = 104
	offLastError    = 360
	sharedStrLen    = 256
	offWantTXID     = 616
	offCommitLock   = 624
	offCommitSalt1  = 628
	offCommitSalt2  = 632
	offCommitFrames = 636

	offReplicaFiles     = 640
	offReplicaBytes     = 648
	offLastSnapshotAt   = 656
	offLastCompactionAt = 664
	offFlags            = 672
	offCompactionError  = 676
	offForeignTxns      = 936
	offLastForeignAt    = 944
	offOwnerReplica     = 952 // the owner's replica (string), set at take-over
	offOldestPendingAt  = 1208
	offCapChange        = 1216
	offChangeKnown      = 1220
	offSyncTXID         = 1224

	flagReplicaKnown = 1
)

// SharedLayout lists the field offsets, for the extension to check its C
// struct against.
var SharedLayout = map[string]uintptr{
	"magic": offMagic, "version": offVersion, "seq": offSeq, "ownerWaiting": offOwnerWaiting,
	"urgent": offUrgent, "pub": offPub, "pubWaiters": offPubWaiters, "ownerPid": offOwnerPID,
	"restarts": offRestarts, "gateTimeouts": offGateTimeouts, "syncReq": offSyncReq, "lock": offLock,
	"capSalt1": offCapSalt1, "capSalt2": offCapSalt2, "capFrames": offCapFrames, "following": offFollowing,
	"capTXID": offCapTXID, "replTXID": offReplTXID, "stepReq": offStepReq, "stepSeq": offStepSeq,
	"state": offState, "pendingBytes": offPendingBytes, "reason": offReason, "lastError": offLastError,
	"wantTXID": offWantTXID, "commitLock": offCommitLock, "commitSalt1": offCommitSalt1,
	"commitSalt2": offCommitSalt2, "commitFrames": offCommitFrames, "syncTXID": offSyncTXID,
}

// Shared states (the state word).
const (
	sharedStarting       = 0 // no step completed since the owner took over
	sharedOK             = 1
	sharedError          = 2
	sharedNeedsSnapshot  = 3
	sharedNotReplicating = 4 // reason says why
	sharedStopped        = 5 // a panic stopped replication in the owner (last error says where)
)

var sharedStateNames = map[uint32]string{
	sharedStarting: StateStarting, sharedOK: StateOK, sharedError: StateError,
	sharedNeedsSnapshot: StateNeedsSnapshot, sharedNotReplicating: StateNotReplicating, sharedStopped: StateStopped,
}

// sharedStateName names a state word; a value no owner writes (a file
// written by something else) reads as starting.
func sharedStateName(v uint32) string {
	if name, ok := sharedStateNames[v]; ok {
		return name
	}
	return StateStarting
}

// errSharedTorn reports a position block whose writer died mid-write.
var errSharedTorn = errors.New("shared state is being written (or its writer died)")

// sharedPos is the position block the owner publishes.
type sharedPos struct {
	Salt1, Salt2 uint32
	Frames       uint32
	Following    bool
	TXID         uint64 // local (captured) TXID
	ReplTXID     uint64
	StepReq      uint32
	StepSeq      uint32
	State        uint32
	PendingBytes uint32
	Reason       string
	LastError    string

	// The replica as the owner's bookkeeping knows it (Unix ns times, 0:
	// none).
	ReplicaKnown     bool
	ReplicaFiles     uint64
	ReplicaBytes     uint64
	LastSnapshotAt   int64
	LastCompactionAt int64
	CompactionError  string
	ForeignTxns      uint64
	LastForeignAt    int64
	OldestPendingAt  int64  // Unix ns; 0: nothing pending
	CapChange        uint32 // the wal-index change counter at the position captured
	ChangeKnown      bool   // CapChange holds

	OwnerReplica string // where the owner replicates to ("": not known)
}

// shared is one process's mapping of the shared file.
type shared struct {
	f   *os.File
	mem []byte
	mu  sync.Mutex // one publisher at a time in this process
}

// openShared maps path, creating and initialising it if needed.
func openShared(path string) (*shared, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open shared state: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < sharedSize {
		err = f.Truncate(sharedSize) // zero-filled; growing never loses a word
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("size shared state: %w", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, sharedSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("map shared state: %w", err)
	}
	s := &shared{f: f, mem: mem}
	if s.u32(offMagic).CompareAndSwap(0, sharedMagic) {
		s.u32(offVersion).Store(sharedVersion)
	} else if magic, version := s.u32(offMagic).Load(), s.u32(offVersion).Load(); magic != sharedMagic || version != sharedVersion {
		// Read before the unmap: reading them after it crashed the host.
		s.close()
		return nil, fmt.Errorf("shared state %s: unknown format (magic %#x, version %d)", path, magic, version)
	}
	return s, nil
}

// close unmaps the file. The shim may hold the address: only call it when
// the shim was never given it.
func (s *shared) close() {
	_ = unix.Munmap(s.mem)
	_ = s.f.Close()
}

// Addr is the mapping's address, for the shim (the mapping is never
// unmapped while the shim has it).
func (s *shared) Addr() unsafe.Pointer { return unsafe.Pointer(&s.mem[0]) }

func (s *shared) u32(off int) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&s.mem[off])) }
func (s *shared) u64(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&s.mem[off])) }

// committed returns the wal-index header published with the last commit
// of a process that does not replicate: frames 1..mx of generation (s1, s2)
// were committed. ok is false while it is being written (or its writer
// died mid-write).
func (s *shared) committed() (mx, s1, s2 uint32, ok bool) {
	lock := s.u32(offCommitLock)
	for range 100 {
		v := lock.Load()
		if v&1 != 0 {
			continue
		}
		s1, s2, mx = s.u32(offCommitSalt1).Load(), s.u32(offCommitSalt2).Load(), s.u32(offCommitFrames).Load()
		if lock.Load() == v {
			return mx, s1, s2, true
		}
	}
	return 0, 0, 0, false
}

// takeOver resets the position block for a new owner: nothing of the dead
// owner's is trusted, a torn seqlock included. replica is where the new
// owner replicates to ("" if it does not fit the field).
func (s *shared) takeOver(pid int, replica string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock := s.u32(offLock)
	v := lock.Load()
	lock.Store(v | 1)
	s.u32(offFollowing).Store(0)
	s.u32(offState).Store(sharedStarting)
	s.putStr(offReason, "")
	s.putStr(offLastError, "")
	s.u32(offFlags).Store(0)
	s.u64(offLastCompactionAt).Store(0)
	s.putStr(offCompactionError, "")
	s.u64(offForeignTxns).Store(0)
	s.u64(offLastForeignAt).Store(0)
	s.u64(offOldestPendingAt).Store(0)
	s.u32(offChangeKnown).Store(0)
	s.u64(offSyncTXID).Store(0)
	if len(replica) >= sharedStrLen {
		replica = ""
	}
	s.putStr(offOwnerReplica, replica)
	s.u32(offOwnerPID).Store(uint32(pid))
	lock.Store((v | 1) + 1)
	s.bumpPub()
}

// publish writes p under the seqlock and wakes readers.
func (s *shared) publish(p sharedPos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock := s.u32(offLock)
	v := lock.Load() | 1
	lock.Store(v)
	s.u32(offCapSalt1).Store(p.Salt1)
	s.u32(offCapSalt2).Store(p.Salt2)
	s.u32(offCapFrames).Store(p.Frames)
	f := uint32(0)
	if p.Following {
		f = 1
	}
	s.u32(offFollowing).Store(f)
	s.u64(offCapTXID).Store(p.TXID)
	s.u64(offReplTXID).Store(p.ReplTXID)
	s.u32(offStepReq).Store(p.StepReq)
	s.u32(offStepSeq).Store(p.StepSeq)
	s.u32(offState).Store(p.State)
	s.u32(offPendingBytes).Store(p.PendingBytes)
	s.putStr(offReason, p.Reason)
	s.putStr(offLastError, p.LastError)
	flags := uint32(0)
	if p.ReplicaKnown {
		flags |= flagReplicaKnown
	}
	s.u32(offFlags).Store(flags)
	s.u64(offReplicaFiles).Store(p.ReplicaFiles)
	s.u64(offReplicaBytes).Store(p.ReplicaBytes)
	s.u64(offLastSnapshotAt).Store(uint64(p.LastSnapshotAt))
	s.u64(offLastCompactionAt).Store(uint64(p.LastCompactionAt))
	s.putStr(offCompactionError, p.CompactionError)
	s.u64(offForeignTxns).Store(p.ForeignTxns)
	s.u64(offLastForeignAt).Store(uint64(p.LastForeignAt))
	s.u64(offOldestPendingAt).Store(uint64(p.OldestPendingAt))
	s.u32(offCapChange).Store(p.CapChange)
	known := uint32(0)
	if p.ChangeKnown {
		known = 1
	}
	s.u32(offChangeKnown).Store(known)
	lock.Store(v + 1)
	s.bumpPub()
}

func (s *shared) bumpPub() {
	s.u32(offPub).Add(1)
	if s.u32(offPubWaiters).Load() > 0 {
		futexWake(s.u32(offPub))
	}
}

// putStr stores str NUL-padded; caller holds the seqlock odd.
func (s *shared) putStr(off int, str string) {
	b := s.mem[off : off+sharedStrLen]
	n := copy(b[:sharedStrLen-1], str)
	clear(b[n:])
}

func (s *shared) getStr(off int) string {
	b := s.mem[off : off+sharedStrLen]
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(b[:n])
}

// load reads the position block; errSharedTorn if no stable read came in
// about a millisecond (a writer mid-write, or one killed there).
func (s *shared) load() (sharedPos, error) {
	lock := s.u32(offLock)
	for try := 0; try < 1000; try++ {
		v := lock.Load()
		if v&1 != 0 {
			if try > 100 {
				time.Sleep(10 * time.Microsecond)
			}
			continue
		}
		p := sharedPos{
			Salt1:        s.u32(offCapSalt1).Load(),
			Salt2:        s.u32(offCapSalt2).Load(),
			Frames:       s.u32(offCapFrames).Load(),
			Following:    s.u32(offFollowing).Load() != 0,
			TXID:         s.u64(offCapTXID).Load(),
			ReplTXID:     s.u64(offReplTXID).Load(),
			StepReq:      s.u32(offStepReq).Load(),
			StepSeq:      s.u32(offStepSeq).Load(),
			State:        s.u32(offState).Load(),
			PendingBytes: s.u32(offPendingBytes).Load(),
			Reason:       s.getStr(offReason),
			LastError:    s.getStr(offLastError),

			ReplicaKnown:     s.u32(offFlags).Load()&flagReplicaKnown != 0,
			ReplicaFiles:     s.u64(offReplicaFiles).Load(),
			ReplicaBytes:     s.u64(offReplicaBytes).Load(),
			LastSnapshotAt:   int64(s.u64(offLastSnapshotAt).Load()),
			LastCompactionAt: int64(s.u64(offLastCompactionAt).Load()),
			CompactionError:  s.getStr(offCompactionError),
			OwnerReplica:     s.getStr(offOwnerReplica),
			ForeignTxns:      s.u64(offForeignTxns).Load(),
			LastForeignAt:    int64(s.u64(offLastForeignAt).Load()),
			OldestPendingAt:  int64(s.u64(offOldestPendingAt).Load()),
			CapChange:        s.u32(offCapChange).Load(),
			ChangeKnown:      s.u32(offChangeKnown).Load() == 1,
		}
		if lock.Load() == v {
			return p, nil
		}
	}
	return sharedPos{}, errSharedTorn
}

// ownerPID returns the pid the owner recorded at take-over (0: none yet).
func (s *shared) ownerPID() int { return int(s.u32(offOwnerPID).Load()) }

// signal records that something happened the owner must look at (a
// commit, a sync request) and wakes the owner's watcher if it sleeps.
func (s *shared) signal(urgent bool) {
	s.signalThen(urgent, func() {})
}

// signalThen is signal with then run after seq is bumped and before the
// owner is woken.
func (s *shared) signalThen(urgent bool, then func()) {
	if urgent {
		s.urge()
	}
	s.u32(offSeq).Add(1)
	then()
	if s.u32(offOwnerWaiting).CompareAndSwap(1, 0) {
		futexWake(s.u32(offSeq))
	}
}

// request numbers a sync request and signals the owner. The signal's seq
// is bumped before the request number: a step loads syncReq, then seq, so
// one that serves this request also covers its signal. (The other way
// round, a step between the two published the request as served with
// the seq before it, and status right after the sync said behind: 1 in
// about 400 syncs.)
func (s *shared) request() uint32 {
	var req uint32
	s.signalThen(true, func() { req = s.u32(offSyncReq).Add(1) })
	return req
}

// want records that a process waits for txid to be replicated (the
// highest such TXID is kept) and signals the owner: its committer and
// uploader skip their pacing until the replica holds it.
func (s *shared) want(txid uint64) {
	w := s.u64(offWantTXID)
	for {
		cur := w.Load()
		if txid <= cur || w.CompareAndSwap(cur, txid) {
			break
		}
	}
	// Urgent only: the owner's urgent watcher passes it to the uploader.
	// A signal would also bump seq after the step that served the sync,
	// and status right after the sync said behind (2-7 in 100 syncs in a
	// process that does not replicate; found by an attack).
	s.urge()
}

// urge bumps the urgent word and wakes the owner's urgent watcher.
func (s *shared) urge() {
	s.u32(offUrgent).Add(1)
	futexWake(s.u32(offUrgent))
}

// waitPub blocks until ok(pos) holds, ctx ends (its error) or the
// position cannot be read. Readers sleep on the pub futex, re-checking at
// least every 100 ms (an owner that died cannot wake them).
func (s *shared) waitPub(ctx context.Context, ok func(sharedPos) bool) (sharedPos, error) {
	pub, waiters := s.u32(offPub), s.u32(offPubWaiters)
	for {
		waiters.Add(1)
		v := pub.Load()
		p, err := s.load()
		if err == nil && ok(p) {
			waiters.Add(^uint32(0))
			return p, nil
		}
		wait := 100 * time.Millisecond
		if dl, has := ctx.Deadline(); has {
			wait = min(wait, time.Until(dl))
		}
		if ctx.Err() == nil && wait > 0 {
			futexWait(pub, v, wait)
		}
		waiters.Add(^uint32(0))
		if err := ctx.Err(); err != nil {
			return p, err
		}
	}
}

// serial reports whether a is at or after b in wrapping uint32 order.
func serialGE(a, b uint32) bool { return int32(a-b) >= 0 }

// futexWait sleeps while *w == val, at most d (<0: no limit). Not FUTEX_PRIVATE: the
// word is in a shared file mapping, and the kernel keys it by file and
// offset, so waiters and wakers in other processes meet.
func futexWait(w *atomic.Uint32, val uint32, d time.Duration) {
	var tsp *unix.Timespec
	if d >= 0 {
		ts := unix.NsecToTimespec(int64(d))
		tsp = &ts
	}
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(tsp)), 0, 0)
}

// futexWake wakes every sleeper on w.
func futexWake(w *atomic.Uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, uintptr(1<<30), 0, 0, 0)
}

// futex(2) operations, without FUTEX_PRIVATE_FLAG (linux/futex.h).
const (
	futexWaitOp = 0
	futexWakeOp = 1
)
