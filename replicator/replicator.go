package replicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/safe"
	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
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
	// MaxPutsPerSecond caps uploads; transactions that queue meanwhile are
	// merged into the next object. 0 means no cap.
	MaxPutsPerSecond float64
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
	pending    []*spoolEntry // durable in the spool, waiting for upload
	lastErr    error
	lastErrAt  time.Time
	errActive  bool // lastErr has not been followed by a successful upload
	overflowed bool // the spool overflowed; cleared once a snapshot is in the replica
	opened     bool // Open loaded the spool and the local position
	confirmed  bool // replicated was confirmed by the store since Open (see confirm)
	uploading  bool // an upload is in flight: its outcome, not a guess, decides an overflow
	epoch      int  // bumped when confirm finds the replica moved: older entries are stale
	uploads    int64

	posMu   sync.Mutex
	posFile *os.File // the position file, kept open (savePosition)

	wake       chan struct{} // uploader
	commitWake chan struct{} // committer
	urge       chan struct{} // a caller waits for the replica: do not pace (committer)
	uploadUrge chan struct{} // the same, for the uploader
	broken     atomic.Bool   // a captured file was lost: the chain needs a snapshot
	want       atomic.Uint64 // the highest TXID a caller waits to see replicated (UrgeTo)
	onBroken   func()
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
	return &Replicator{
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
		p, err := r.replicaPos(actx)
		cancel()
		if err == nil {
			repPos, confirmed = p, true
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
// the uploader.
func (r *Replicator) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := safe.Run(r.logger, "committer", func() { r.commitLoop(ctx) }); err != nil {
			r.setError(err)
		}
	}()
	go func() {
		defer r.wg.Done()
		if err := safe.Run(r.logger, "uploader", func() { r.uploadLoop(ctx) }); err != nil {
			r.setError(err)
		}
	}()
}

// Close stops the uploader; spooled files stay for the next Open.
func (r *Replicator) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
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

func (r *Replicator) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// scan reads every page of the state and returns its checksum table.
func scan(pageSize, commit uint32, read PageReader) (*pageChecksums, error) {
	c := &pageChecksums{pageSize: pageSize, commit: commit, crcs: make([]ltx.Checksum, commit)}
	buf := make([]byte, pageSize)
	lock := ltx.LockPgno(pageSize)
	h := ltx.NewHasher()
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lock {
			continue
		}
		if err := read(pgno, buf); err != nil {
			return nil, fmt.Errorf("read page %d: %w", pgno, err)
		}
		c.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
	}
	return c, nil
}

// Snapshot writes the whole state as a snapshot (MinTXID 1) at the snapshot
// level with the next TXID, and makes it the base state.
func (r *Replicator) Snapshot(pageSize, commit uint32, read PageReader, verify func() error, ts time.Time) (ltx.TXID, error) {
	if commit == 0 {
		return 0, fmt.Errorf("snapshot: empty database")
	}
	txid := r.Pos().TXID + 1
	r.broken.Store(false)
	c := &pageChecksums{pageSize: pageSize, commit: commit, crcs: make([]ltx.Checksum, commit)}
	hdr := ltx.Header{
		Version:   ltx.Version,
		Flags:     r.headerFlags(),
		PageSize:  pageSize,
		Commit:    commit,
		MinTXID:   1,
		MaxTXID:   txid,
		Timestamp: ts.UnixMilli(),
	}
	lock := ltx.LockPgno(pageSize)
	pgnos := func(yield func(uint32) bool) {
		for pgno := uint32(1); pgno <= commit; pgno++ {
			if pgno != lock && !yield(pgno) {
				return
			}
		}
	}
	e, err := r.write(replica.SnapshotLevel, hdr, pgnos, read, verify, c)
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	r.crcs = c
	r.added(e)
	r.logger.Info("snapshot spooled", "txid", txid, "pages", commit, "bytes", e.Size)
	return txid, nil
}

// Append spools n consecutive committed transactions as one LTX file at
// level 0 with TXIDs pos+1..pos+n. pgnos lists the pages they changed in
// ascending order (pages past commit are skipped); commit is the db size
// after the last of them.
func (r *Replicator) Append(n int, pageSize, commit uint32, pgnos []uint32, read PageReader, verify func() error, ts time.Time) (ltx.TXID, error) {
	if !r.Initialized() {
		return 0, ErrNotInitialized
	}
	if r.crcs.pageSize != pageSize {
		return 0, ErrPageSizeChanged
	}
	pos := r.Pos()
	hdr := ltx.Header{
		Version:          ltx.Version,
		Flags:            r.headerFlags(),
		PageSize:         pageSize,
		Commit:           commit,
		MinTXID:          pos.TXID + 1,
		MaxTXID:          pos.TXID + ltx.TXID(n),
		Timestamp:        ts.UnixMilli(),
		PreApplyChecksum: pos.PostApplyChecksum,
	}
	if r.opts.NoChecksum {
		hdr.PreApplyChecksum = 0
	}
	lock := ltx.LockPgno(pageSize)
	seq := func(yield func(uint32) bool) {
		for _, pgno := range pgnos {
			if pgno <= commit && pgno != lock && !yield(pgno) {
				return
			}
		}
	}
	d := newDelta(r.crcs, commit)
	e, err := r.write(0, hdr, seq, read, verify, d)
	if err != nil {
		return 0, err
	}
	d.apply()
	r.added(e)
	return hdr.MaxTXID, nil
}

func (r *Replicator) headerFlags() uint32 {
	if r.opts.NoChecksum {
		return ltx.HeaderFlagNoChecksum
	}
	return 0
}

// checksummer receives the checksum of every page written.
type checksummer interface {
	set(pgno uint32, crc ltx.Checksum)
	Checksum() ltx.Checksum
}

// write encodes one LTX file into the spool, passing every page's checksum
// to c; the post-apply checksum is c's afterwards. verify, if not nil, runs
// once every page was read: an error discards the file (the source changed
// under the reader).
func (r *Replicator) write(level int, hdr ltx.Header, pgnos func(func(uint32) bool), read PageReader, verify func() error, c checksummer) (*spoolEntry, error) {
	rw, err := r.spool.begin()
	if err != nil {
		return nil, err
	}
	enc, err := r.encs.get(rw)
	if err != nil {
		rw.abort()
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		rw.abort()
		return nil, fmt.Errorf("encode header: %w", err)
	}
	buf := r.encs.pageBuf(hdr.PageSize)
	h := ltx.NewHasher()
	for pgno := range pgnos {
		if err = read(pgno, buf); err != nil {
			err = fmt.Errorf("read page %d: %w", pgno, err)
			break
		}
		if err = enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
			err = fmt.Errorf("encode page %d: %w", pgno, err)
			break
		}
		c.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
	}
	if err == nil && verify != nil {
		err = verify()
	}
	if err != nil {
		rw.abort()
		return nil, err
	}
	if !hdr.NoChecksum() {
		enc.SetPostApplyChecksum(c.Checksum())
	}
	if err := enc.Close(); err != nil {
		rw.abort()
		return nil, fmt.Errorf("close encoder: %w", err)
	}
	if err := r.encs.flush(); err != nil {
		rw.abort()
		return nil, fmt.Errorf("write spool record: %w", err)
	}
	return rw.finish(level, hdr.MinTXID, hdr.MaxTXID, c.Checksum(), enc.N())
}

// added queues a written file for the committer. The data is out of the
// WAL (in the page cache), which is all the WAL-reset gate needs; the
// fsync happens off the capture path.
func (r *Replicator) added(e *spoolEntry) {
	r.mu.Lock()
	if e.MaxTXID <= r.pos.TXID {
		// Built on a position confirm has since moved past: its TXIDs
		// are the replica's already. A snapshot restarts the chain.
		r.mu.Unlock()
		r.spool.release(e)
		r.breakChain("a captured file was built on a position the replica had moved past; a snapshot will follow", nil)
		return
	}
	e.epoch = r.epoch
	r.queue = append(r.queue, e)
	r.pos = ltx.Pos{TXID: e.MaxTXID, PostApplyChecksum: e.Post}
	r.notifyLocked()
	r.mu.Unlock()
	poke(r.commitWake)
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
func (r *Replicator) UrgeTo(txid ltx.TXID) {
	for {
		cur := r.want.Load()
		if uint64(txid) <= cur || r.want.CompareAndSwap(cur, uint64(txid)) {
			break
		}
	}
	r.Urge()
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

// txnCount returns how many transactions entries cover, a snapshot
// counting as one.
func txnCount(entries []*spoolEntry) int64 {
	var n int64
	for _, e := range entries {
		if e.MinTXID == 1 {
			n++
		} else {
			n += int64(e.MaxTXID - e.MinTXID + 1)
		}
	}
	return n
}

// commitLoop makes captured files durable in order, one fdatasync per
// batch. If that fails, the files after the last durable one are dropped
// until a snapshot restarts the chain, so the spool never has a gap.
func (r *Replicator) commitLoop(ctx context.Context) {
	var failed error
	var p pacer
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.commitWake:
		}
		r.mu.Lock()
		durable := r.durable.TXID
		r.mu.Unlock()
		if !r.wanted(durable) && !p.wait(ctx, r.urge) {
			return
		}
		threads.Background()
		start := time.Now()
		r.mu.Lock()
		batch := r.queue
		r.queue = nil
		r.mu.Unlock()

		var keep []*spoolEntry
		for _, e := range batch {
			if failed != nil && e.MinTXID != 1 {
				r.spool.release(e)
				continue
			}
			failed = nil
			keep = append(keep, e)
		}
		if err := r.spool.sync(keep); err != nil {
			failed = err
			for _, e := range keep {
				r.spool.release(e)
			}
			keep = nil
		}
		p.done(start, txnCount(batch), time.Since(start))
		r.mu.Lock()
		for _, e := range keep {
			if e.epoch != r.epoch || (r.confirmed && e.MaxTXID <= r.replicated.TXID) {
				r.spool.release(e) // dropped by confirm meanwhile, or already in the replica
				continue
			}
			r.pending = append(r.pending, e)
			r.durable = ltx.Pos{TXID: e.MaxTXID, PostApplyChecksum: e.Post}
		}
		if failed != nil {
			r.lastErr, r.lastErrAt, r.errActive = failed, time.Now(), true
		}
		r.notifyLocked()
		r.mu.Unlock()
		if failed != nil {
			r.breakChain("spool write failed; a snapshot will follow", failed)
		}
		r.checkOverflow()
		poke(r.wake)
	}
}

// breakChain records that the chain of files has a hole: Append refuses
// until the next Snapshot, and the owner is asked for one.
func (r *Replicator) breakChain(why string, err error) {
	if r.broken.Swap(true) {
		return
	}
	r.logger.Warn(why, "err", err, "spool_max_bytes", r.opts.SpoolMaxBytes)
	if r.onBroken != nil {
		r.onBroken()
	}
}

// checkOverflow applies the spool bound (see dropOnOverflowLocked).
func (r *Replicator) checkOverflow() {
	r.mu.Lock()
	overflow := r.dropOnOverflowLocked()
	if overflow {
		r.notifyLocked()
	}
	r.mu.Unlock()
	if overflow {
		r.breakChain("spool full during an outage; dropped what the replica lacks, a snapshot will follow", nil)
	}
}

// dropOnOverflowLocked enforces SpoolMaxBytes, while uploads fail, over the
// files waiting for the replica, not counting the newest snapshot (a snapshot alone may
// exceed the bound). Over it, the files before the newest snapshot go first
// (the snapshot covers them); if that is not enough, or there is no
// snapshot, everything goes and it reports true: a snapshot is owed.
// Caller holds r.mu.
func (r *Replicator) dropOnOverflowLocked() bool {
	size := func() int64 {
		var n int64
		for _, e := range r.pending {
			if e.MinTXID != 1 {
				n += e.Size
			}
		}
		return n
	}
	if !r.errActive || r.uploading || size() <= r.opts.SpoolMaxBytes {
		// A working replica drains any backlog; the bound is for outages.
		// While an upload is in flight the store may be back: dropping
		// then threw away what was about to be in the replica and owed a
		// needless snapshot (the uploader checks again if it fails).
		return false
	}
	last := -1
	for i, e := range r.pending {
		if e.MinTXID == 1 {
			last = i
		}
	}
	if last > 0 {
		for _, e := range r.pending[:last] {
			r.spool.release(e)
		}
		r.pending = slices.Delete(r.pending, 0, last)
		if size() <= r.opts.SpoolMaxBytes {
			return false
		}
	}
	for _, e := range r.pending {
		r.spool.release(e)
	}
	r.pending = nil
	r.overflowed = true
	return true
}

func (r *Replicator) setError(err error) {
	r.mu.Lock()
	r.lastErr, r.lastErrAt, r.errActive = err, time.Now(), true
	r.notifyLocked()
	r.mu.Unlock()
}

// WaitReplicated blocks until the replica holds txid or ctx ends. It
// urges a paced commit cycle.
func (r *Replicator) WaitReplicated(ctx context.Context, txid ltx.TXID) error {
	r.UrgeTo(txid)
	for {
		r.mu.Lock()
		done, ch := r.confirmed && r.replicated.TXID >= txid, r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
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
	Uploads        int64
	LastError      string
	LastErrorAt    time.Time
	ErrorActive    bool // the last upload attempt failed
	Confirmed      bool // the store confirmed ReplicatedTXID since Open (before that it is 0: unknown)
	NeedsSnapshot  bool // the spool overflowed and no snapshot has reached the replica since
}

// Status returns the current status.
func (r *Replicator) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		Replica:      r.client.String(),
		LocalTXID:    r.pos.TXID,
		PendingFiles: len(r.pending),
		Uploads:      r.uploads,
		Confirmed:    r.confirmed,
	}
	if r.confirmed {
		st.ReplicatedTXID = r.replicated.TXID
	}
	st.PendingTXNs = int64(st.LocalTXID - st.ReplicatedTXID)
	for _, e := range r.pending {
		st.PendingBytes += e.Size
	}
	if r.lastErr != nil {
		st.LastError, st.LastErrorAt = r.lastErr.Error(), r.lastErrAt
	}
	st.ErrorActive = r.errActive
	st.NeedsSnapshot = r.overflowed
	return st
}
