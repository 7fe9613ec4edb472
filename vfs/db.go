package vfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/safe"
	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator"
	"github.com/superfly/ltx"
)

// States reported by Status.
const (
	StateOK             = "ok"
	StateBehind         = "behind"
	StateError          = "error"
	StateNeedsSnapshot  = "needs-snapshot"
	StateNotReplicating = "not-replicating"
)

var (
	// ErrNotReplicating is returned by Sync when the database cannot be
	// replicated (journal mode, locking mode, another process).
	ErrNotReplicating = errors.New("not replicating")
	// ErrWALChanged is returned when another process restarted the WAL
	// while frames were being read; the capture is retried as a snapshot.
	ErrWALChanged = errors.New("wal restarted by another process while reading")
	// errWALIndexNotReady defers a snapshot until this process's
	// connections have a wal-index (see snapshot).
	errWALIndexNotReady = errors.New("wal-index not built yet")
)

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
	// SpoolMaxBytes bounds the spool (0: the default); see replicator.Options.
	SpoolMaxBytes int64
	// NoChecksum writes Litestream-compatible LTX files without checksums;
	// see replicator.Options.
	NoChecksum bool
}

// DB replicates one database. Safe for concurrent use.
type DB struct {
	cfg    Config
	host   Host
	rep    *replicator.Replicator
	fol    *Follower
	logger *slog.Logger
	lock   *os.File

	// Owned by the capture goroutine.
	seen         Events
	genRestarts  uint64      // Restarts when the followed generation was adopted
	owner        atomic.Bool // this process holds the replication lock
	exclusive    bool
	batched      int // transactions captured by the current step
	needSnapshot bool
	opened       bool

	mu        sync.Mutex
	changed   chan struct{}
	captured  uint64 // announced commits captured into the spool
	reason    string // why the database is not replicating, if it is not
	lastErr   error
	lastErrAt time.Time
	errActive bool // the last step failed
	pending   bool // a snapshot is owed

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
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.StateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	db.lock = lock
	db.rep = replicator.New(cfg.Replica, replicator.Options{
		SpoolDir: filepath.Join(cfg.StateDir, "spool"),
		Logger:   db.logger,
		OnBroken: db.host.Poke,

		MaxPutsPerSecond: cfg.MaxPutsPerSecond,
		SpoolMaxBytes:    cfg.SpoolMaxBytes,
		NoChecksum:       cfg.NoChecksum,
	})
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := io.ReadAll(io.LimitReader(lock, 32))
		db.reason = fmt.Sprintf("another process (pid %s) replicates this database", string(owner))
		db.logger.Warn("not replicating", "reason", db.reason)
		return db, nil
	}
	db.takeOwnership()
	return db, nil
}

// takeOwnership records this process as the replicating one.
func (db *DB) takeOwnership() {
	_ = db.lock.Truncate(0)
	_, _ = db.lock.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
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
			_ = safe.Run(db.logger, "lock waiter", func() {
				if err := syscall.Flock(int(db.lock.Fd()), syscall.LOCK_EX); err != nil || ctx.Err() != nil {
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
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		if err := safe.Run(db.logger, "capture", func() { db.loop(ctx) }); err != nil {
			db.setError(err)
		}
	}()
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
	retry := time.Duration(-1)
	interval := minStepInterval
	var lastStep time.Time
	for {
		threads.Background()
		db.batched = 0
		t0 := time.Now()
		err := db.step(ctx, ev)
		if db.logger.Enabled(ctx, slog.LevelDebug) {
			db.logger.Debug("step", "txns", db.batched, "took", time.Since(t0))
		}
		switch {
		case errors.Is(err, errWALIndexNotReady) && ev.WALOpen > 0:
			// A connection of this process is opening the WAL: try again
			// shortly. Not an error.
			retry = min(max(2*retry, time.Millisecond), 200*time.Millisecond)
		case errors.Is(err, errWALIndexNotReady):
			retry = -1 // the WAL is not open yet: its open wakes the loop
		case err != nil:
			db.setError(err)
			db.logger.Warn("capture failed", "err", err)
			retry = min(max(2*retry, 100*time.Millisecond), 5*time.Second)
		default:
			retry = -1
		}
		if ctx.Err() != nil || ev.Shutdown {
			return
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
			if wait := interval - time.Since(t0); wait > 0 {
				db.host.WaitGate(wait)
			}
		}
		ver, ev = db.host.Wait(ver, retry)
	}
}

// step handles whatever happened since the last step. It always
// acknowledges the announced commits: the gate must not wait for a
// replicator that failed; a failure instead owes a snapshot.
func (db *DB) step(ctx context.Context, ev Events) (err error) {
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
	}()
	if !db.opened {
		if err := db.rep.Open(ctx); err != nil {
			return fmt.Errorf("open replicator: %w", err)
		}
		db.opened = true
	}
	if ev.GateTimeouts != db.seen.GateTimeouts || ev.SnapshotBroken != db.seen.SnapshotBroken {
		db.needSnapshot = true
	}
	if ev.ExclusiveWrites != db.seen.ExclusiveWrites && !db.exclusive {
		db.exclusive = true
		db.logger.Warn("not replicating: locking_mode=EXCLUSIVE keeps the WAL index private; commits cannot be observed")
	}
	if db.exclusive {
		if ev.WALOpen > 0 {
			db.setReason("locking_mode=EXCLUSIVE: commits cannot be observed", false)
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
			db.setReason("journal_mode is not WAL: only WAL databases are replicated", true)
			db.needSnapshot = true
			return nil
		}
	}
	db.setReason("", false)
	if db.needSnapshot || !db.rep.Initialized() {
		return db.snapshot()
	}
	if err := db.follow(ev); err != nil {
		return err
	}
	if db.needSnapshot {
		return db.snapshot() // the chain broke while following
	}
	return nil
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

// adopt checks the WAL header and decides whether the follower may read on.
// A new generation is legitimate only if the shim let a restart through
// since the followed one was adopted (the gate made sure every commit of
// the old one was captured first); anything else means frames may have been
// lost, and a snapshot is owed.
func (db *DB) adopt(ev Events) (bool, error) {
	hdr, st, err := db.fol.CheckHeader()
	if err != nil {
		return false, err
	}
	// The shim counts a reset before doing it, so counters read after the
	// header include every reset whose effect the header shows.
	ev = db.host.Events()
	switch st {
	case WALSameGen:
		return true, nil
	case WALMissing, WALEmpty:
		if db.fol.Following() {
			if ev.Restarts == db.genRestarts {
				return false, db.owe("the WAL was reset by another process")
			}
			if db.endsBeyond(ev) {
				return false, db.owe("the WAL was reset before all its commits were read")
			}
			db.fol.Unfollow()
			db.genRestarts = ev.Restarts
		}
		return false, nil
	default: // WALNewGeneration
		if db.fol.Following() && ev.Restarts == db.genRestarts {
			return false, db.owe("the WAL was restarted by another process")
		}
		if !db.fol.Succeeds(hdr) {
			return false, db.owe("a WAL generation was missed (another process restarted it)")
		}
		if db.fol.Following() && db.endsBeyond(ev) {
			return false, db.owe("the WAL was restarted before all its commits were read")
		}
		db.fol.Follow(hdr)
		db.genRestarts = ev.Restarts
		return true, nil
	}
}

// verifyGeneration checks, after pages were read from WAL frames, that the
// WAL still holds the generation they were read from. SQLite rewrites the
// header before it overwrites any frame of a restarted WAL, so an unchanged
// header proves the frames read were not overwritten. This process's own
// restarts wait at the gate; this catches another process's.
func (db *DB) verifyGeneration() error {
	if !db.fol.Following() {
		return nil
	}
	if _, st, err := db.fol.CheckHeader(); err != nil {
		return err
	} else if st != WALSameGen {
		db.needSnapshot = true
		return ErrWALChanged
	}
	return nil
}

// endsBeyond reports whether the followed generation was recorded to end
// past the last frame read from it.
func (db *DB) endsBeyond(ev Events) bool {
	hdr := db.fol.Header()
	if ev.EndSalt1 != hdr.Salt1 || ev.EndSalt2 != hdr.Salt2 {
		return false
	}
	return WALHeaderSize+int64(ev.EndMxFrame)*hdr.FrameSize() > db.fol.Offset()
}

// trusted returns how many frames of the followed generation SQLite's
// wal-index says are committed: the latest of the value published with the
// last announced commit, the live header (which also covers commits of
// other processes) and the recorded end of the generation. exact reports
// that the live header belongs to the followed generation: then no frame
// past n is committed, and the follower need not read past it.
func (db *DB) trusted() (n uint32, exact bool) {
	hdr := db.fol.Header()
	ev := db.host.Events()
	if ev.Salt1 == hdr.Salt1 && ev.Salt2 == hdr.Salt2 {
		n = ev.MxFrame
	}
	if ev.EndSalt1 == hdr.Salt1 && ev.EndSalt2 == hdr.Salt2 {
		n = max(n, ev.EndMxFrame)
	}
	if mx, s1, s2, ok := db.host.WALIndex(); ok && s1 == hdr.Salt1 && s2 == hdr.Salt2 {
		n, exact = max(n, mx), mx >= n
	}
	return n, exact
}

func (db *DB) owe(why string) error {
	db.needSnapshot = true
	db.logger.Warn("snapshot needed", "reason", why)
	return nil
}

// follow ships every committed transaction found in the WAL.
func (db *DB) follow(ev Events) error {
	ok, err := db.adopt(ev)
	if err != nil || !ok {
		if err == nil && db.needSnapshot {
			return db.snapshot()
		}
		return err
	}
	// One bound per step: commits that land while this step runs are the
	// next step's. Chasing them here made a step under load a long run of
	// tiny LTX files.
	n, exact := db.trusted()
	for {
		txns, err := db.fol.ReadTxns(maxBatchBytes, n, exact)
		if err != nil {
			return err
		}
		if len(txns) == 0 {
			return nil
		}
		if err := db.append(txns); err != nil || db.needSnapshot {
			return err
		}
	}
}

// append spools txns as one LTX file.
func (db *DB) append(txns []Txn) error {
	pages := make(map[uint32]int64)
	for _, t := range txns {
		for pgno, off := range t.Pages {
			pages[pgno] = off
		}
	}
	pgnos := make([]uint32, 0, len(pages))
	for pgno := range pages {
		pgnos = append(pgnos, pgno)
	}
	sort.Slice(pgnos, func(i, j int) bool { return pgnos[i] < pgnos[j] })
	read := func(pgno uint32, buf []byte) error {
		_, err := db.fol.ReadAt(buf, pages[pgno])
		return err
	}
	db.batched += len(txns)
	commit := txns[len(txns)-1].Commit
	_, err := db.rep.Append(len(txns), db.fol.Header().PageSize, commit, pgnos, read, db.verifyGeneration, time.Now())
	switch {
	case errors.Is(err, replicator.ErrPageSizeChanged):
		return db.owe("page size changed")
	case errors.Is(err, replicator.ErrNotInitialized):
		return db.owe("the replicator dropped its chain (spool write failed or spool full)")
	}
	return err
}

// snapshot captures the whole current state while the shim holds back
// this process's checkpoint writes and WAL resets and a read transaction
// holds back other processes' checkpoints: the database file plus the
// WAL's last committed frame of each page. On the first capture after open it first
// tries to resume: if the state's checksum equals the last spooled or
// replicated position, no snapshot is written.
func (db *DB) snapshot() error {
	if wal, empty, err := db.walMode(); err != nil || empty || !wal {
		return err // nothing to snapshot yet
	}
	// While this process has the database open, the read transaction
	// starts only once its connections have built the wal-index: a reader
	// that finds it unbuilt runs WAL recovery under the WAL_WRITE lock, and
	// an application write at that moment fails with SQLITE_BUSY_RECOVERY.
	if _, _, _, ok := db.host.WALIndex(); !ok && db.host.Events().Conns > 0 {
		return errWALIndexNotReady
	}
	// Read transaction first, then hold back this process's checkpoint
	// writes: the other way round, a connection closing (which checkpoints
	// under an EXCLUSIVE lock) waits for the snapshot while the reader
	// waits for its lock.
	release, err := db.host.HoldReadTxn()
	if err != nil {
		return err
	}
	defer release()
	db.host.BeginSnapshot()
	defer db.host.EndSnapshot()

	db.fol.Unfollow()
	hdr, st, err := db.fol.CheckHeader()
	if err != nil {
		return err
	}
	if st == WALSameGen || st == WALNewGeneration {
		db.fol.Follow(hdr)
		n, exact := db.trusted()
		for {
			txns, err := db.fol.ReadTxns(maxBatchBytes, n, exact)
			if err != nil {
				return err
			}
			if len(txns) == 0 {
				break
			}
		}
	}
	db.genRestarts = db.host.Events().Restarts

	f, err := db.host.OpenDBFile()
	if err != nil {
		return fmt.Errorf("open db file: %w", err)
	}
	defer f.Close()
	pageSize, commit, err := db.stateSize(f)
	if err != nil || commit == 0 {
		return err // an empty database: wait for its first commit
	}
	read := func(pgno uint32, buf []byte) error {
		if off, ok := db.fol.Lookup(pgno); ok {
			_, err := db.fol.ReadAt(buf, off)
			return err
		}
		n, err := f.ReadAt(buf, int64(pgno-1)*int64(pageSize))
		if errors.Is(err, io.EOF) {
			clear(buf[n:]) // past the end of the file: never written
			return nil
		}
		return err
	}
	if !db.needSnapshot && !db.rep.Initialized() {
		ok, err := db.rep.Reconcile(pageSize, commit, read, db.verifyGeneration)
		if err != nil {
			return err
		}
		if ok {
			db.logger.Info("resumed", "txid", db.rep.Pos().TXID)
			return nil
		}
	}
	txid, err := db.rep.Snapshot(pageSize, commit, read, db.verifyGeneration, time.Now())
	if err != nil {
		return err
	}
	db.needSnapshot = false
	db.logger.Info("snapshot", "txid", txid, "pages", commit)
	return nil
}

// stateSize returns the page size and page count of the state under
// snapshot: the WAL's last commit if it has one, else the database header.
func (db *DB) stateSize(f DBFile) (uint32, uint32, error) {
	if db.fol.Following() && db.fol.Commit() > 0 {
		return db.fol.Header().PageSize, db.fol.Commit(), nil
	}
	b := make([]byte, 100)
	if _, err := f.ReadAt(b, 0); errors.Is(err, io.EOF) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("read db header: %w", err)
	}
	pageSize := uint32(binary.BigEndian.Uint16(b[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if !ltx.IsValidPageSize(pageSize) {
		return 0, 0, fmt.Errorf("db header: invalid page size %d", pageSize)
	}
	size, err := f.Size()
	if err != nil {
		return 0, 0, fmt.Errorf("db size: %w", err)
	}
	commit := uint32(size / int64(pageSize))
	// The in-header size is valid when the change counter matches
	// version-valid-for (fileformat2.html#in_header_database_size).
	if n := binary.BigEndian.Uint32(b[28:]); n > 0 && binary.BigEndian.Uint32(b[24:]) == binary.BigEndian.Uint32(b[92:]) {
		commit = n
	}
	return pageSize, commit, nil
}

// setReason records why the database is not replicated ("" if it is);
// warn logs a change.
func (db *DB) setReason(reason string, warn bool) {
	db.mu.Lock()
	if warn && reason != "" && reason != db.reason {
		db.logger.Warn("not replicating", "reason", reason)
	}
	db.reason = reason
	db.notifyLocked()
	db.mu.Unlock()
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
