package replicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/safe"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
	"github.com/superfly/ltx"
	"golang.org/x/time/rate"
)

var (
	// ErrNotInitialized is returned by Append before a snapshot or a
	// successful Reconcile has set the page checksum table, and after a
	// captured file was lost (a snapshot must come next).
	ErrNotInitialized = errors.New("replicator has no base state")
	// ErrPageSizeChanged is returned by Append when the page size differs
	// from the base state's; the caller must snapshot.
	ErrPageSizeChanged = errors.New("page size changed")
)

// Options configure a Replicator.
type Options struct {
	SpoolDir string       // local directory for spooled LTX files
	Logger   *slog.Logger // nil: slog.Default()
	// RetryMin and RetryMax bound the upload retry backoff.
	RetryMin, RetryMax time.Duration
	// OnBroken is called (from another goroutine) when a captured file
	// could not be made durable, so the caller can schedule a snapshot.
	OnBroken func()
	// MaxPutsPerSecond caps the sustained rate of uploads (the uploader's
	// and the compactor's together); transactions that queue meanwhile are
	// merged into the next object. 0 means no cap.
	MaxPutsPerSecond float64
	// PutBurst is how many uploads may go at once after a quiet spell
	// (a token bucket of this size refilled at MaxPutsPerSecond; 0: 1).
	// A commit after a quiet second ships at once while a steady load
	// ships at most MaxPutsPerSecond objects a second.
	PutBurst int
	// PermanentRetry is the wait before retrying an upload that failed with
	// replica.ErrPermanent (default 30 s).
	PermanentRetry time.Duration
	// NoChecksum writes LTX files with HeaderFlagNoChecksum and no pre- or
	// post-apply checksums, as Litestream 0.5 does, so `litestream restore`
	// can read the replica. The checksums are still tracked locally.
	NoChecksum bool
	// SpoolMaxBytes bounds the spool (default DefaultSpoolMaxBytes). Past
	// it, every file not yet in the replica is dropped and a snapshot is
	// owed instead: the spool then holds that snapshot and what follows it.
	SpoolMaxBytes int64
	// Compaction schedules the merging of the replica's files into levels
	// and the deletion of level-0 files they cover (no intervals: off).
	Compaction compact.Config
	// Clock is the replicator's time (nil: the real clock).
	Clock Clock
	// LocalCopyBytes bounds the spool space kept for local copies of
	// shipped level-0 files, which compaction reads instead of the store
	// (localcopy.go; 0: DefaultLocalCopyBytes, negative: none).
	LocalCopyBytes int64
	// Stop is the fatal state a recovered panic of the replicator's
	// goroutines leaves (nil: the replicator makes its own). A caller that
	// shares it with its own goroutines sees one failure for all.
	Stop *safe.Stop
}

// DefaultSpoolMaxBytes is the default spool bound: 512 MiB.
const DefaultSpoolMaxBytes = 512 << 20

// Replicator builds LTX files for one database. Append, Snapshot and
// Reconcile must be called from one goroutine; the rest is safe for
// concurrent use.
type Replicator struct {
	client replica.Client
	spool  spool
	logger *slog.Logger
	opts   Options

	crcs *pageChecksums // nil until a base state is known; owned by the capture goroutine
	encs encoderCache   // owned by the capture goroutine

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change of state
	pos        ltx.Pos       // last captured position (written, maybe not yet fsynced)
	durable    ltx.Pos       // last position durable in the spool
	replicated ltx.Pos       // last position in the replica
	queue      []*spoolEntry // written, waiting for fsync and rename
	syncing    []*spoolEntry // taken from queue by the committer, being made durable
	pending    []*spoolEntry // durable in the spool, waiting for upload
	copies     []*localCopy  // shipped level-0 files kept for compaction, oldest first
	lastErr    error
	lastErrAt  time.Time
	errActive  bool        // lastErr has not been followed by a successful upload
	overflowed bool        // the spool overflowed; cleared once a snapshot is in the replica
	opened     bool        // Open loaded the spool and the local position
	confirmed  bool        // replicated was confirmed by the store since Open (see confirm)
	uploading  bool        // an upload is in flight: its outcome, not a guess, decides an overflow
	framePages atomic.Bool // the replica holds LTX pages in LZ4 frame format: merge with ltx.Compactor
	epoch      int         // bumped when confirm finds the replica moved: older entries are stale
	uploads    int64
	upBytes    int64            // bytes of the objects the uploader wrote
	upErrors   map[string]int64 // failed attempts of the uploader (confirm or upload), by ErrorKind

	cat              catalog // the replica's files, as the owner knows them
	clock            Clock
	compactWake      chan struct{}      // compactor: a file reached the replica
	compactStop      context.CancelFunc // ends the compactor (StopCompaction)
	compactDone      chan struct{}      // closed when the compactor ended
	compactions      int64
	lastCompactionAt time.Time
	compactErr       error        // the last compaction failed (cleared by one that works)
	manualCompaction bool         // tests: no compactor goroutine, they call compactStep
	dbBytes          atomic.Int64 // the database's size after the last captured file
	snapshots        int64        // snapshots built from the replica's files since Open

	posMu   sync.Mutex
	posFile *os.File // the position file, kept open (savePosition)

	puts       *rate.Limiter // the PUT budget (nil: no cap); see Options.PutBurst
	budgetWait atomic.Int64  // while the uploader waits for the budget: when its PUT goes (unix ns)
	budgetHeld atomic.Int64  // times the uploader waited for the budget (tests)
	wake       chan struct{} // uploader
	commitWake chan struct{} // committer
	urge       chan struct{} // a caller waits for the replica: do not pace (committer)
	uploadUrge chan struct{} // the same, for the uploader
	broken     atomic.Bool   // a captured file was lost: the chain needs a snapshot
	want       atomic.Uint64 // the highest TXID a caller waits to see replicated (UrgeTo)
	syncWant   atomic.Uint64 // the highest TXID a replicate=sync commit waits for (SyncTo)
	onBroken   func()
	stop       *safe.Stop // failed: a goroutine panicked, nothing ships until a restart
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// New returns a Replicator shipping to client.
func New(client replica.Client, opts Options) *Replicator {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 50 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Second
	}
	if opts.PermanentRetry <= 0 {
		opts.PermanentRetry = 30 * time.Second
	}
	if opts.SpoolMaxBytes <= 0 {
		opts.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Stop == nil {
		opts.Stop = safe.NewStop(opts.Logger)
	}
	var puts *rate.Limiter
	if opts.MaxPutsPerSecond > 0 {
		puts = rate.NewLimiter(rate.Limit(opts.MaxPutsPerSecond), max(opts.PutBurst, 1))
	}
	return &Replicator{
		puts:       puts,
		stop:       opts.Stop,
		client:     client,
		spool:      spool{dir: opts.SpoolDir},
		logger:     opts.Logger,
		opts:       opts,
		changed:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
		commitWake: make(chan struct{}, 1),
		urge:       make(chan struct{}, 1),
		uploadUrge: make(chan struct{}, 1),
		onBroken:   opts.OnBroken,
		clock:      opts.Clock,

		compactWake: make(chan struct{}, 1),
	}
}

// Open loads the spool and the replica's last position. The local position
// is the later of the two.
func (r *Replicator) Open(ctx context.Context) error {
	entries, err := r.spool.load()
	if err != nil {
		return err
	}
	repPos, err := r.loadPosition()
	confirmed := false
	if err != nil {
		// No position file (a first start): ask the store, briefly. If it
		// does not answer, the uploader confirms later.
		actx, cancel := context.WithTimeout(ctx, openWait)
		p, lv, err := r.replicaPos(actx)
		cancel()
		if err == nil {
			repPos, confirmed = p, true
			r.cat.set(lv, r.clock.Now())
			poke(r.compactWake)
			r.removePartial(ctx) // as confirm does: no upload has started
		} else {
			repPos = ltx.Pos{}
			r.logger.Info("replica position unknown at open; spooling, the uploader asks again", "err", err)
		}
	}
	r.mu.Lock()
	defer poke(r.wake) // the uploader may start: confirm, then ship
	defer r.mu.Unlock()
	r.opened = true
	r.replicated = repPos
	r.confirmed = confirmed
	r.pos = repPos
	r.durable = repPos
	r.pending = r.pending[:0]
	for _, e := range entries {
		if e.MaxTXID <= repPos.TXID {
			r.spool.release(e) // already shipped before a crash
			continue
		}
		r.pending = append(r.pending, e)
		r.pos = ltx.Pos{TXID: e.MaxTXID, PostApplyChecksum: e.Post}
		r.durable = r.pos
	}
	return nil
}

// Start launches the committer (fsync and rename of captured files) and
// the uploader. A panic in either fails the Stop: the other goroutines
// end, Status reports it, and WaitReplicated returns it at once. A panic
// in the compactor only stops compaction (compaction_error): shipping
// goes on.
func (r *Replicator) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	r.stop.OnFail(func(error) { r.cancel() })
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := safe.Run(r.logger, "committer", func() { r.commitLoop(ctx) }); err != nil {
			r.stop.Fail(err)
		}
	}()
	if len(r.opts.Compaction.Intervals) > 0 && !r.manualCompaction {
		cctx, stop := context.WithCancel(ctx)
		r.compactStop, r.compactDone = stop, make(chan struct{})
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(r.compactDone)
			if err := safe.Run(r.logger, "compactor", func() { r.compactLoop(cctx) }); err != nil {
				r.setCompactError(fmt.Errorf("compaction stopped until the process restarts: %w", err))
			}
		}()
	}
	go func() {
		defer r.wg.Done()
		if err := safe.Run(r.logger, "uploader", func() { r.uploadLoop(ctx) }); err != nil {
			r.stop.Fail(err)
		}
	}()
}

// StopCompaction ends the compactor and waits (until ctx ends) for it to
// finish: a compaction or snapshot being written is abandoned and its
// partial object removed (it would stay behind if the process exited
// under it). Uploads go on. For a process about to exit.
func (r *Replicator) StopCompaction(ctx context.Context) error {
	if r.compactStop == nil {
		return nil
	}
	r.compactStop()
	select {
	case <-r.compactDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the uploader; spooled files stay for the next Open.
func (r *Replicator) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.dropCopies(nil)
	r.spool.close()
	r.closePosition()
	return nil
}

// Initialized reports whether a base state is known, so Append can run.
// It is false after a captured file was lost, until the next Snapshot.
func (r *Replicator) Initialized() bool { return r.crcs != nil && !r.broken.Load() }

// Reset forgets the base state; the next capture must snapshot.
func (r *Replicator) Reset() { r.crcs = nil }

// openState reports whether Open ran and whether the store confirmed the
// replicated position since.
func (r *Replicator) openState() (opened, confirmed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened, r.confirmed
}

// Changed returns a channel closed at the next change of state (a file
// captured, made durable or uploaded, an error).
func (r *Replicator) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Pos returns the last spooled position.
func (r *Replicator) Pos() ltx.Pos {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// locked runs fn holding r.mu and releases it even if fn panics: a
// recovered panic must not leave the lock held (Status, the capture's
// Append and the publisher take it). Sections that call more than field
// assignments use it.
func (r *Replicator) locked(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn()
}

func (r *Replicator) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Urge makes paced work start now: a caller waits for the replica.
func (r *Replicator) Urge() {
	poke(r.urge)
	poke(r.uploadUrge)
}

// UrgeTo is Urge for a caller that waits until the replica holds txid:
// the committer and the uploader do not pace until it does (a single
// wake-up could be spent on a pause that ends before txid is captured).
// A txid the replica holds already urges nothing: another process's
// writer waiting at a WAL-reset gate raises the same shared signal as a
// sync, and needs only the capture (with several writers at 60,000
// commits a second that made an upload of every step: 67 a second).
func (r *Replicator) UrgeTo(txid ltx.TXID) {
	if txid <= r.replicatedTXID() {
		return
	}
	for {
		cur := r.want.Load()
		if uint64(txid) <= cur || r.want.CompareAndSwap(cur, uint64(txid)) {
			break
		}
	}
	r.Urge()
}

// SyncTo is UrgeTo for replicate=sync commits waiting for txid: their
// upload goes at once, outside the PUT budget (it still debits it, so
// asynchronous uploads wait longer after it). A caller of litestream_sync
// gets only a bounded credit (putWait); a synchronous commit asked for a
// PUT per group of commits waiting together.
func (r *Replicator) SyncTo(txid ltx.TXID) {
	for {
		cur := r.syncWant.Load()
		if uint64(txid) <= cur || r.syncWant.CompareAndSwap(cur, uint64(txid)) {
			break
		}
	}
	r.UrgeTo(txid)
}

// replicatedTXID is the TXID the store confirmed it holds (0: not known).
func (r *Replicator) replicatedTXID() ltx.TXID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.confirmed {
		return 0
	}
	return r.replicated.TXID
}

// wanted reports whether a caller waits for a TXID past pos.
func (r *Replicator) wanted(pos ltx.TXID) bool { return ltx.TXID(r.want.Load()) > pos }

// uploadFailed records a failed attempt of the uploader to reach the store.
func (r *Replicator) uploadFailed(err error) {
	r.mu.Lock()
	if r.upErrors == nil {
		r.upErrors = make(map[string]int64)
	}
	r.upErrors[ErrorKind(err)]++
	r.mu.Unlock()
	r.setError(err)
}

func (r *Replicator) setError(err error) {
	r.mu.Lock()
	r.lastErr, r.lastErrAt, r.errActive = err, time.Now(), true
	r.notifyLocked()
	r.mu.Unlock()
}

// WaitReplicated blocks until the replica holds txid or ctx ends. It
// urges a paced commit cycle. After a panic stopped replication it
// returns the Stop's error (safe.ErrStopped).
func (r *Replicator) WaitReplicated(ctx context.Context, txid ltx.TXID) error {
	r.UrgeTo(txid)
	for {
		if err := r.stop.Err(); err != nil {
			return err
		}
		r.mu.Lock()
		done, ch := r.confirmed && r.replicated.TXID >= txid, r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stop.Done():
		case <-ch:
		}
	}
}

// Status is a point-in-time view of the replicator.
type Status struct {
	Replica        string
	LocalTXID      ltx.TXID
	ReplicatedTXID ltx.TXID
	PendingFiles   int
	PendingTXNs    int64
	PendingBytes   int64
	OldestPending  time.Time // capture time of the oldest spooled file not yet in the replica (zero: none)
	Uploads        int64
	UploadedBytes  int64            // bytes of the objects the uploader wrote since Open
	UploadErrors   map[string]int64 // failed attempts to reach the store since Open, by ErrorKind
	SpoolBytes     int64            // the spool's segments on disk
	BudgetWait     time.Time        // the uploader waits for the PUT budget until then (zero: it does not)
	LastError      string
	LastErrorAt    time.Time
	ErrorActive    bool // the last upload attempt failed
	Confirmed      bool // the store confirmed ReplicatedTXID since Open (before that it is 0: unknown)
	NeedsSnapshot  bool // the spool overflowed and no snapshot has reached the replica since

	// The replica as the owner's bookkeeping knows it (zero until the
	// store confirmed its position).
	ReplicaFiles     int
	ReplicaBytes     int64
	LastSnapshotAt   time.Time // the newest snapshot's creation
	Compactions      int64     // files written by compaction since Open
	Snapshots        int64     // snapshots built by the compactor since Open
	LastCompactionAt time.Time
	CompactionError  string // the last compaction failed

	Stopped bool // a panic stopped replication (LastError says where)
}

// Status returns the current status. After a panic stopped replication
// it reports only that, without the lock the panicking goroutine may
// have held.
func (r *Replicator) Status() Status {
	if at, err := r.stop.Cause(); err != nil {
		return Status{Replica: r.client.String(), Stopped: true, LastError: err.Error(), LastErrorAt: at, ErrorActive: true}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		Replica:       r.client.String(),
		LocalTXID:     r.pos.TXID,
		PendingFiles:  len(r.pending),
		Uploads:       r.uploads,
		UploadedBytes: r.upBytes,
		Confirmed:     r.confirmed,
		SpoolBytes:    r.spool.Bytes(),
	}
	if len(r.upErrors) > 0 {
		st.UploadErrors = maps.Clone(r.upErrors)
	}
	if ns := r.budgetWait.Load(); ns != 0 {
		st.BudgetWait = time.Unix(0, ns)
	}
	if r.confirmed {
		st.ReplicatedTXID = r.replicated.TXID
	}
	st.PendingTXNs = int64(st.LocalTXID - st.ReplicatedTXID)
	for _, e := range r.pending {
		st.PendingBytes += e.Size
	}
	if len(r.pending) > 0 {
		st.OldestPending = r.pending[0].At
	}
	if r.lastErr != nil {
		st.LastError, st.LastErrorAt = r.lastErr.Error(), r.lastErrAt
	}
	st.ErrorActive = r.errActive
	st.NeedsSnapshot = r.overflowed
	st.Compactions, st.LastCompactionAt, st.Snapshots = r.compactions, r.lastCompactionAt, r.snapshots
	if r.compactErr != nil {
		st.CompactionError = r.compactErr.Error()
	}
	st.ReplicaFiles, st.ReplicaBytes, st.LastSnapshotAt = r.cat.totals()
	return st
}
