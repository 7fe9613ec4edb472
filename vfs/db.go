package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/safe"
	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// States reported by Status.
const (
	StateStarting       = "starting"
	StateOK             = "ok"
	StateBehind         = "behind"
	StateError          = "error"
	StateNeedsSnapshot  = "needs-snapshot"
	StateNotReplicating = "not-replicating"
	StateStopped        = "stopped" // a panic stopped replication in the owner; restart it
)

var (
	// ErrNotReplicating is returned by Sync when the database cannot be
	// replicated (journal mode, locking mode, another process).
	ErrNotReplicating = errors.New("not replicating")
	// ErrWALChanged is returned when another process restarted the WAL
	// while frames were being read; the capture is retried as a snapshot.
	ErrWALChanged = errors.New("wal restarted by another process while reading")
	// ErrStopped is returned by Sync once a recovered panic stopped
	// replication in the process that replicates (Status says stopped):
	// nothing ships until that process restarts.
	ErrStopped = safe.ErrStopped
	// ErrBusy is returned by Host.HoldReadTxn when a connection of the
	// host holds the database exclusively (a closing connection's
	// checkpoint, a journal mode change): the capture tries again soon,
	// without a warning.
	ErrBusy = errors.New("the database is busy")
	// ErrReplicaConflict fails the open of a database another process
	// replicates to a different replica.
	ErrReplicaConflict = errors.New("another process replicates this database elsewhere")
)

// reasonExclusive is the status reason while locking_mode=EXCLUSIVE hides
// the WAL index.
const reasonExclusive = "locking_mode=EXCLUSIVE: commits cannot be observed"

// reasonEmpty is the status reason of a database with no pages yet.
const reasonEmpty = "empty database, not in WAL mode yet"

// maxBatchBytes bounds the WAL frames read into one LTX file.
const maxBatchBytes = 64 << 20

// The least time between the starts of two capture steps that found
// transactions (see loop and stepPace).
const (
	minStepInterval = 5 * time.Millisecond
	maxStepInterval = 50 * time.Millisecond
)

// stepPace returns the interval before the next capture step, given the
// last one and the transactions the step that just ran found since the
// step before it: while replicator.UnderLoad the interval doubles up to
// maxStepInterval (spool cycles are paced further apart than that under
// load anyway); otherwise it is minStepInterval.
func stepPace(interval time.Duration, txns int, since time.Duration) time.Duration {
	if !replicator.UnderLoad(int64(txns), since) {
		return minStepInterval
	}
	return min(2*interval, maxStepInterval)
}

// Config describes one database.
type Config struct {
	Path     string         // main database file, as SQLite names it
	Replica  replica.Client // where LTX files go
	StateDir string         // spool and lock; default Path + "-litestream"
	Host     Host
	Logger   *slog.Logger
	// MaxPutsPerSecond caps uploads (0: no cap); see replicator.Options.
	MaxPutsPerSecond float64
	// PutBurst is how many uploads may go at once after a quiet spell.
	PutBurst int
	// SpoolMaxBytes bounds the spool (0: the default); see replicator.Options.
	SpoolMaxBytes int64
	// NoChecksum writes Litestream-compatible LTX files without checksums;
	// see replicator.Options.
	NoChecksum bool
	// Compaction schedules compaction levels and level-0 retention; see
	// replicator.Options.
	Compaction compact.Config
}

// DB replicates one database. Safe for concurrent use.
type DB struct {
	cfg    Config
	host   Host
	rep    *replicator.Replicator
	fol    *Follower
	logger *slog.Logger
	lock   *os.File
	sh     *shared    // the host's shared state of this database
	stop   *safe.Stop // failed by a recovered panic of any goroutine (stopped)

	// Owned by the capture goroutine.
	seen          Events
	shBase        Events        // the shared counters when this process took over
	covered       *Events       // counters a snapshot (or resume) just covered, for seen
	genRestarts   uint64        // Restarts when the followed generation was adopted
	capChange     uint32        // the wal-index change counter at the position captured (linked)
	changeKnown   bool          // capChange holds
	closesSeen    uint64        // Closes when changeKnown was last checked against them
	bound         WALIndex      // the live wal-index the step's bounds came from
	boundExact    bool          // bound is of the followed generation
	closesChecked atomic.Uint64 // Closes when a reopen was last checked (changedSince; Status reads it)
	owner         atomic.Bool   // this process holds the replication lock
	exclusive     bool
	exclSeen      atomic.Uint64 // ExclusiveWrites the last step saw (Status reads it)
	snapshots     atomic.Int64  // full snapshots read from the database by this process
	ino           uint64        // inode of the database file when first seen
	replaced      string        // set once the file at the path is not that inode
	batched       int           // transactions captured by the current step
	needSnapshot  bool
	opened        bool

	pubMu  sync.Mutex  // serializes publish (owner.go)
	halted atomic.Bool // replication ended for good in this process (lockGone): Sync fails at once

	mu        sync.Mutex
	changed   chan struct{}
	captured  uint64 // announced commits captured into the spool
	reason    string // why the database is not replicating, if it is not
	lastErr   error
	lastErrAt time.Time
	errActive bool      // the last step failed
	pending   bool      // a snapshot is owed
	stepped   bool      // a step completed since this process took over
	pub       sharedPos // what the last completed step publishes
	walSeen   walStamp  // the WAL when the last completed step began (foreign.go)

	foreign         *foreignCount // telling foreign transactions (foreign.go)
	foreignTxns     int64         // transactions of writers without the extension
	lastForeignAt   time.Time
	lastForeignWarn time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open prepares replication of one database: it creates the state directory
// and takes the per-database replication lock. A database whose lock is
// held by another process is opened in the not-replicating state.
func Open(cfg Config) (*DB, error) {
	if cfg.StateDir == "" {
		cfg.StateDir = cfg.Path + "-litestream"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db := &DB{
		cfg:     cfg,
		host:    cfg.Host,
		fol:     NewFollower(cfg.Path + "-wal"),
		logger:  cfg.Logger.With("db", cfg.Path),
		changed: make(chan struct{}),
	}
	db.stop = safe.NewStop(db.logger)
	db.stop.OnFail(db.stopped)
	db.foreign = newForeignCount(db.readCounters, db.foundForeign)
	db.foreign.guard = db.guard
	if st, err := os.Stat(cfg.Path); err == nil {
		db.ino = st.Sys().(*syscall.Stat_t).Ino
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.StateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	db.lock = lock
	sh, err := openShared(filepath.Join(cfg.StateDir, "shared"))
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	db.sh = sh
	db.host.ShareState(sh.Addr())
	db.rep = replicator.New(cfg.Replica, replicator.Options{
		SpoolDir: filepath.Join(cfg.StateDir, "spool"),
		Logger:   db.logger,
		OnBroken: db.host.Poke,
		Stop:     db.stop,

		MaxPutsPerSecond: cfg.MaxPutsPerSecond,
		PutBurst:         cfg.PutBurst,
		SpoolMaxBytes:    cfg.SpoolMaxBytes,
		NoChecksum:       cfg.NoChecksum,
		Compaction:       cfg.Compaction,
	})
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		// Another process replicates: this one's commits reach the
		// replica through it (shared state); it takes over when that
		// process goes away.
		owner, _ := io.ReadAll(io.LimitReader(lock, 32))
		// Its replica, not this process's, gets this process's commits: a
		// different one must not be taken silently (status named it while
		// the commits went elsewhere; found by an attack).
		if p, err := sh.load(); err == nil && p.OwnerReplica != "" && p.OwnerReplica != cfg.Replica.String() && ownerAlive(sh.ownerPID()) {
			_ = lock.Close()
			return nil, fmt.Errorf("%w: replica %s differs from %s, which process %d replicates this database to", ErrReplicaConflict, cfg.Replica, p.OwnerReplica, sh.ownerPID())
		}
		db.logger.Info("another process replicates this database; its replicator ships this process's commits", "owner_pid", string(owner))
		return db, nil
	}
	db.takeOwnership()
	return db, nil
}

// takeOwnership records this process as the replicating one.
func (db *DB) takeOwnership() {
	_ = db.lock.Truncate(0)
	_, _ = db.lock.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	db.sh.takeOver(os.Getpid(), db.cfg.Replica.String())
	db.owner.Store(true)
}

// Replicating reports whether this process replicates the database.
func (db *DB) Replicating() bool { return db.owner.Load() }

// Start launches capture and upload. If another process holds the
// replication lock, Start waits for it in the background (a blocking flock:
// no polling) and takes over when that process goes away; capture then
// begins by reconciling the database with the replica.
func (db *DB) Start(ctx context.Context) {
	if !db.owner.Load() {
		go func() {
			db.guard("lock waiter", func() {
				if err := syscall.Flock(int(db.lock.Fd()), syscall.LOCK_EX); err != nil || ctx.Err() != nil || db.stop.Err() != nil {
					return
				}
				db.takeOwnership()
				db.setReason("", false)
				db.logger.Info("took over replication")
				db.start(ctx)
			})
		}()
		return
	}
	db.start(ctx)
}

func (db *DB) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	db.mu.Lock()
	db.cancel = cancel
	db.mu.Unlock()
	db.host.SetAttached(true)
	db.rep.Start(ctx)
	for name, fn := range map[string]func(context.Context){
		"capture": db.loop, "shared watcher": db.watch, "shared publisher": db.publishLoop, "shared urgent watcher": db.watchUrgent,
	} {
		db.wg.Add(1)
		go func() {
			defer db.wg.Done()
			db.guard(name, func() { fn(ctx) })
		}()
	}
}

// guard runs a goroutine's body; a panic in it is recovered and stops
// replication (stopped).
func (db *DB) guard(name string, fn func()) {
	if err := safe.Run(db.logger, name, fn); err != nil {
		db.stop.Fail(err)
	}
}

// stopped runs once, when a recovered panic of any goroutine (this
// package's or the replicator's) failed the Stop. Nothing can be trusted
// to capture or ship any more, so it must not look like it does: this
// process's writers stop waiting at the WAL-reset gate, the goroutines
// end, Status says stopped, and the owner publishes that (with no
// followed WAL, so other processes' gates stop waiting too) and every
// process's Sync fails at once. The replication lock stays held: the
// spool keeps what was captured for the next process that replicates.
func (db *DB) stopped(err error) {
	db.host.SetAttached(false)
	db.mu.Lock()
	cancel := db.cancel
	db.notifyLocked()
	db.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	db.logger.Error("replication stopped after an internal error; restart the process to resume", "err", err)
	if db.owner.Load() {
		db.publish()
	}
}

// StopCompaction ends compaction in the process that replicates and waits
// (until ctx ends) for a compaction being written to be abandoned and its
// partial object removed; shipping goes on. For a process about to exit
// (the extension's exit flush), which would otherwise leave the partial
// object in the replica for the next owner to find.
func (db *DB) StopCompaction(ctx context.Context) error {
	if !db.owner.Load() {
		return nil
	}
	return db.rep.StopCompaction(ctx)
}

// Close stops the goroutines. Spooled files stay for the next open.
func (db *DB) Close() error {
	db.mu.Lock()
	cancel := db.cancel
	db.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	db.host.SetAttached(false)
	db.sh.signal(true) // ends the watchers' sleep
	db.wg.Wait()
	var err error
	if db.owner.Load() {
		err = db.rep.Close()
	}
	_ = db.fol.Close()
	if db.lock != nil {
		_ = db.lock.Close()
	}
	return err
}

func (db *DB) loop(ctx context.Context) {
	var ver uint64
	ev := db.host.Events()
	db.shBase = Events{Restarts: db.sh.u64(offRestarts).Load(), GateTimeouts: db.sh.u64(offGateTimeouts).Load()}
	retry := time.Duration(-1)
	interval := minStepInterval
	var lastStep time.Time
	var warned failureLog
	// Until the first step has reconciled, writes to the database file
	// (a checkpoint's backfill) wait, as during a snapshot: the resume
	// matches the spooled position against the file as it was before the
	// WAL's transactions, and a backfill before the first step (commits
	// made at open while the step was late) overwrote that state: a full
	// snapshot instead of a resume (TestS3/StoreDownAtBoot, 3 in 15 loaded
	// runs). The first snapshot() ends the hold; a step without one ends it
	// after the step.
	db.host.BeginSnapshot()
	held := true
	for {
		threads.Background()
		db.batched = 0
		t0 := time.Now()
		// A step reads everything committed before it starts: it serves
		// the sync requests and covers the signals made so far (syncReq
		// before seq: shared.request bumps them the other way round).
		req, seq, urgent := db.sh.u32(offSyncReq).Load(), db.sh.u32(offSeq).Load(), db.sh.u32(offUrgent).Load()
		stamp, wasStepped := db.statWAL(), db.stepped
		preA, preP := db.readCounters()
		err := db.step(ctx, ev)
		if held {
			db.host.EndSnapshot()
			held = false
		}
		db.publishStep(req, seq, err)
		if err == nil {
			db.mu.Lock()
			db.walSeen = stamp
			db.mu.Unlock()
			if wasStepped {
				db.foreign.step(preA, preP, db.batched)
			} else {
				db.foreign.reset(preA, preP) // what earlier processes left is not foreign
			}
		}
		if db.logger.Enabled(ctx, slog.LevelDebug) {
			db.logger.Debug("step", "txns", db.batched, "took", time.Since(t0))
		}
		switch {
		case errors.Is(err, ErrBusy):
			// Held exclusively for a moment (a closing connection
			// checkpoints, a journal mode changes): not a failure.
			db.logger.Debug("capture waits: the database is busy", "err", err)
			retry = 10 * time.Millisecond
		case err != nil:
			db.setError(err)
			warned.failed(db.logger, err)
			retry = min(max(2*retry, 100*time.Millisecond), 5*time.Second)
		default:
			warned.recovered(db.logger)
			retry = -1
		}
		if ctx.Err() != nil || ev.Shutdown {
			return
		}
		if err != nil {
			// A failing step (a full disk, an unreadable file) is retried
			// after the backoff, not at every commit: each try may read the
			// whole database for a snapshot. A sync request or the exit
			// flush tries again at once.
			ver, ev = db.backoff(ctx, ver, retry, req)
			continue
		}
		// Steps that captured something start at least interval apart:
		// under load each covers many commits, so the capture's fixed cost
		// (and the spool records after it) does not grow with the commit
		// rate. A commit after a quiet spell is taken at once. A
		// checkpoint, an app thread waiting at a gate (a WAL reset) or a
		// litestream_sync ends the pause early.
		if db.batched > 0 {
			interval = stepPace(interval, db.batched, t0.Sub(lastStep))
			lastStep = t0
			// A sync request or a gate wait of another process since the
			// step started wants the next step now (its wake-up may have
			// come before this pause began).
			if wait := interval - time.Since(t0); wait > 0 && db.sh.u32(offUrgent).Load() == urgent {
				db.host.WaitGate(wait)
			}
		}
		ver, ev = db.host.Wait(ver, retry)
	}
}

// backoff waits d after a failed step, or less if the process exits, the
// context ends or a sync request newer than req is made (commits do not
// end it), and returns the event version and counters then.
func (db *DB) backoff(ctx context.Context, ver uint64, d time.Duration, req uint32) (uint64, Events) {
	deadline := time.Now().Add(d)
	for {
		rem := time.Until(deadline)
		ev := db.host.WaitGate(max(rem, 0))
		if rem <= 0 || ev.Shutdown || ctx.Err() != nil || db.sh.u32(offSyncReq).Load() != req {
			return db.host.Wait(ver, 0)
		}
		if ev.GateWaiters > 0 {
			// The failed step owes a snapshot: nothing in the WAL needs
			// keeping, and a WAL reset must not wait for the backoff.
			db.host.Ack(ev.Announced, 0, 0, 0)
		}
		if time.Until(deadline) > 0 {
			// An app thread at a gate or a checkpoint ends WaitGate at
			// once and may do so again: do not spin on it.
			time.Sleep(min(time.Until(deadline), 10*time.Millisecond))
		}
	}
}

// failureLog keeps a capture that fails again and again from logging a
// warning each time: the first failure, each new cause and, while the same
// cause repeats, one line a minute with the count. The cause is the
// innermost error ("no space left on device"): the page or offset named
// around it changes from try to try.
type failureLog struct {
	msg      string // the cause
	at       time.Time
	repeated int
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func (f *failureLog) failed(logger *slog.Logger, err error) {
	now := time.Now()
	switch cause := rootCause(err).Error(); {
	case cause != f.msg:
		f.msg, f.at, f.repeated = cause, now, 0
		logger.Warn("capture failed", "err", err)
	case now.Sub(f.at) >= time.Minute:
		logger.Warn("capture still failing", "err", err, "failures", f.repeated+1, "since", f.at)
		f.at, f.repeated = now, 0
	default:
		f.repeated++
	}
}

func (f *failureLog) recovered(logger *slog.Logger) {
	if f.msg != "" {
		logger.Info("capture works again", "after", f.msg)
	}
	*f = failureLog{}
}

// step handles whatever happened since the last step. It always
// acknowledges the announced commits: the gate must not wait for a
// replicator that failed; a failure instead owes a snapshot.
func (db *DB) step(ctx context.Context, ev Events) (err error) {
	ev = db.merge(ev)
	seq := ev.Announced
	defer func() {
		if err != nil {
			db.needSnapshot = true
		}
		var s1, s2, frames uint32
		if db.fol.Following() {
			hdr := db.fol.Header()
			s1, s2 = hdr.Salt1, hdr.Salt2
			frames = uint32((db.fol.Offset() - WALHeaderSize) / hdr.FrameSize())
		}
		// done first: Sync trusts the shim's acknowledgements only while
		// no snapshot is pending, and must see a failure before the
		// shim acknowledges commits on this step's behalf.
		db.done(seq, err)
		db.host.Ack(seq, s1, s2, frames)
		db.seen = ev
		if c := db.covered; c != nil && err == nil {
			// What the snapshot read includes everything counted before
			// it began: those counts owe no second snapshot.
			db.seen.NonWALWrites = max(db.seen.NonWALWrites, c.NonWALWrites)
			db.seen.GateTimeouts = max(db.seen.GateTimeouts, c.GateTimeouts)
			db.seen.SnapshotBroken = max(db.seen.SnapshotBroken, c.SnapshotBroken)
		}
		db.covered = nil
	}()
	if !db.opened {
		if err := db.rep.Open(ctx); err != nil {
			return fmt.Errorf("open replicator: %w", err)
		}
		db.opened = true
	}
	if db.replaced == "" {
		if why := db.lockGone(); why != "" {
			db.replaced = why
			db.halted.Store(true)
			db.logger.Error("not replicating", "reason", why)
			db.host.SetAttached(false)
			db.mu.Lock()
			cancel := db.cancel
			db.mu.Unlock()
			if cancel != nil {
				defer cancel() // the uploader too: what it holds may overlap the new owner's
			}
			db.setReason(why, true)
			return nil
		}
	}
	if why := db.fileReplaced(); why != "" {
		db.setReason(why, true)
		// Nothing of this file can be captured any more: gates must not
		// wait for it (a closing connection waited the gate timeout).
		db.host.SetAttached(false)
		return nil
	}
	if ev.Closes != db.closesSeen {
		// The process's last connection closed: the wal-index may be
		// rebuilt before the next one maps it, its change counter
		// starting over.
		db.closesSeen, db.changeKnown = ev.Closes, false
	}
	if ev.Closes != db.closesChecked.Load() && ev.Conns > 0 {
		// Opened again after the process had no connection: another
		// process may have changed the database unseen meanwhile.
		if why := changedSince(db.cfg.Path, ev.Closed); why != "" && db.rep.Initialized() {
			db.logger.Info("the database changed while this process had it closed; checking it against the spooled position", "change", why)
			db.rep.Reset() // the next snapshot() resumes if the state still matches
		}
		// Checked once this step has reconciled: until then Status says
		// behind.
		defer func() {
			if err == nil {
				db.closesChecked.Store(ev.Closes)
			}
		}()
	}
	if ev.GateTimeouts != db.seen.GateTimeouts || ev.SnapshotBroken != db.seen.SnapshotBroken {
		db.needSnapshot = true
	}
	db.exclSeen.Store(ev.ExclusiveWrites)
	if ev.ExclusiveWrites != db.seen.ExclusiveWrites && !db.exclusive {
		db.exclusive = true
		db.logger.Warn("not replicating: locking_mode=EXCLUSIVE keeps the WAL index private; commits cannot be observed")
	}
	if db.exclusive {
		if ev.WALOpen > 0 {
			db.setReason(reasonExclusive, false)
			return nil
		}
		db.exclusive = false
		db.needSnapshot = true
	}
	if ev.NonWALWrites != db.seen.NonWALWrites {
		db.needSnapshot = true
	}
	if ev.WALOpen == 0 {
		wal, empty, err := db.walMode()
		if err != nil {
			return err
		}
		if empty {
			db.setReason(reasonEmpty, false)
			return nil
		}
		if !wal {
			db.setReason(reasonNotWAL, true)
			db.needSnapshot = true
			return nil
		}
	}
	db.setReason("", false)
	if db.needSnapshot || !db.rep.Initialized() {
		if err := db.snapshot(); err != nil || db.needSnapshot || !db.rep.Initialized() {
			return err
		}
		// A resume may have set the follower back inside the WAL: what
		// follows there is this step's, so the step covers everything
		// committed before it started.
	}
	if err := db.follow(ev); err != nil {
		return err
	}
	if db.needSnapshot {
		return db.snapshot() // the chain broke while following
	}
	return nil
}

// changedSince says how the file at path differs from was (its stat when
// the process's last connection closed), or "" if it does not. A writer
// without the extension that opened the database after that (its close
// checkpoints into the file and deletes the WAL) leaves no other trace:
// the WAL this process finds at its reopen is a new file, which the
// follower cannot tell from the one this process deleted.
func changedSince(path string, was FileStamp) string {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Sprintf("stat: %v", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "no inode"
	}
	now := FileStamp{Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
	if now != was {
		return fmt.Sprintf("inode %d size %d mtime %d ctime %d, at the last close %d %d %d %d", now.Ino, now.Size, now.Mtime, now.Ctime, was.Ino, was.Size, was.Mtime, was.Ctime)
	}
	return ""
}

// fileReplaced reports why the database file is no longer the one this
// process's connections write ("" while it is): the file at the path was
// replaced (another inode) or deleted underneath them. SQLite's open
// descriptors keep writing the old file, which nothing can replicate, and
// the replica must not silently become the new one; it stays so until the
// process reopens. The first inode seen is the one that counts.
func (db *DB) fileReplaced() string {
	if db.replaced != "" {
		return db.replaced
	}
	st, err := os.Stat(db.cfg.Path)
	var ino uint64
	if err == nil {
		ino = st.Sys().(*syscall.Stat_t).Ino
	}
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "" // cannot tell; the capture itself reports read errors
	case db.ino == 0:
		db.ino = ino
		return ""
	case ino == db.ino:
		return ""
	case ino == 0:
		db.replaced = "the database file was deleted while open; this process's connections write a file nothing replicates: restart the process"
	default:
		db.replaced = fmt.Sprintf("the database file was replaced while open (inode %d, now %d); this process's connections still write the old file, which is not replicated: restart the process", db.ino, ino)
	}
	db.logger.Error("not replicating", "reason", db.replaced)
	return db.replaced
}

// lockGone says, in the process that replicates, if its lock file is no
// longer the one at its path: the state directory was deleted (or
// replaced) under it, so another process can take a new lock and
// replicate too, two owners writing one replica (found by an attack). It
// stops replicating then (one stat per step).
func (db *DB) lockGone() string {
	if db.lock == nil || !db.owner.Load() {
		return ""
	}
	held, err := db.lock.Stat()
	if err != nil {
		return ""
	}
	st, err := os.Stat(db.lock.Name())
	if err == nil && os.SameFile(held, st) {
		return ""
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "" // cannot tell
	}
	return fmt.Sprintf("the state directory %s was deleted or replaced under the replicating process (its lock and spool are gone; another process may replicate now): this process stopped replicating: restart it", filepath.Dir(db.lock.Name()))
}

// walMode reports whether the database header says WAL (read/write
// version 2), or that the database is still empty.
func (db *DB) walMode() (wal, empty bool, err error) {
	f, err := db.host.OpenDBFile()
	if err != nil {
		return false, false, fmt.Errorf("open db file: %w", err)
	}
	defer f.Close()
	b := make([]byte, 20)
	if _, err := f.ReadAt(b, 0); errors.Is(err, io.EOF) {
		return false, true, nil
	} else if err != nil {
		return false, false, fmt.Errorf("read db header: %w", err)
	}
	if string(b[:16]) != "SQLite format 3\x00" {
		return false, false, nil
	}
	return b[18] == 2 && b[19] == 2, false, nil
}

// reasonNotWAL says why a database in a rollback-journal mode is not
// replicated.
const reasonNotWAL = "journal_mode is not WAL: only WAL databases are replicated"

// notWAL reports whether the database file says it is in a rollback-journal
// mode (one read of its header).
func (db *DB) notWAL() bool {
	wal, empty, err := db.walMode()
	return err == nil && !empty && !wal
}

// setReason records why the database is not replicated ("" if it is);
// warn logs a change.
func (db *DB) setReason(reason string, warn bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if warn && reason != "" && reason != db.reason {
		db.logger.Warn("not replicating", "reason", reason)
	}
	db.reason = reason
	db.notifyLocked()
}

func (db *DB) setError(err error) {
	db.mu.Lock()
	db.lastErr, db.lastErrAt, db.errActive = err, time.Now(), true
	db.notifyLocked()
	db.mu.Unlock()
}

// done records that commits up to seq were handled.
func (db *DB) done(seq uint64, err error) {
	db.mu.Lock()
	db.pending = db.needSnapshot
	if err == nil {
		db.errActive = false
	}
	if err == nil && !db.needSnapshot && seq > db.captured {
		db.captured = seq
	}
	db.notifyLocked()
	db.mu.Unlock()
}

func (db *DB) notifyLocked() {
	close(db.changed)
	db.changed = make(chan struct{})
}
