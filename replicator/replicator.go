package replicator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	uploads    int64

	wake       chan struct{} // uploader
	commitWake chan struct{} // committer
	urge       chan struct{} // a caller waits for the replica: do not pace (committer)
	uploadUrge chan struct{} // the same, for the uploader
	broken     atomic.Bool   // a captured file was lost: the chain needs a snapshot
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
	repPos, err := r.replicaPos(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replicated = repPos
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

// replicaPos returns the position of the newest file in the replica.
func (r *Replicator) replicaPos(ctx context.Context) (ltx.Pos, error) {
	var best *ltx.FileInfo
	for _, level := range []int{0, replica.SnapshotLevel} {
		infos, err := r.client.LTXFiles(ctx, level)
		if err != nil {
			return ltx.Pos{}, fmt.Errorf("list replica level %d: %w", level, err)
		}
		if n := len(infos); n > 0 && (best == nil || infos[n-1].MaxTXID > best.MaxTXID) {
			best = infos[n-1]
		}
	}
	if best == nil {
		return ltx.Pos{}, nil
	}
	rc, err := r.client.OpenLTXFile(ctx, best.Level, best.MinTXID, best.MaxTXID)
	if err != nil {
		return ltx.Pos{}, fmt.Errorf("open replica file: %w", err)
	}
	defer rc.Close()
	post, err := trailerOf(rc)
	if err != nil {
		return ltx.Pos{}, fmt.Errorf("read replica file %s: %w", ltx.FormatFilename(best.MinTXID, best.MaxTXID), err)
	}
	if post == 0 {
		// A file without checksums: the position file left by the last
		// upload knows the checksum if it names the same TXID; otherwise
		// the checksum stays unknown and the next capture snapshots.
		if saved, err := r.loadPosition(); err == nil && saved.TXID == best.MaxTXID {
			post = saved.PostApplyChecksum
		}
	}
	return ltx.Pos{TXID: best.MaxTXID, PostApplyChecksum: post}, nil
}

// positionPath is where the last replicated position is kept for replicas
// whose files carry no checksums.
func (r *Replicator) positionPath() string { return filepath.Join(r.spool.dir, "position") }

func (r *Replicator) loadPosition() (ltx.Pos, error) {
	b, err := os.ReadFile(r.positionPath())
	if err != nil {
		return ltx.Pos{}, err
	}
	return ltx.ParsePos(strings.TrimSpace(string(b)))
}

// savePosition records pos (best effort, no fsync: a stale or missing file
// only costs a snapshot on the next open).
func (r *Replicator) savePosition(pos ltx.Pos) {
	tmp := r.positionPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(pos.String()+"\n"), 0o644); err == nil {
		_ = os.Rename(tmp, r.positionPath())
	}
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
	return nil
}

// Initialized reports whether a base state is known, so Append can run.
// It is false after a captured file was lost, until the next Snapshot.
func (r *Replicator) Initialized() bool { return r.crcs != nil && !r.broken.Load() }

// Reset forgets the base state; the next capture must snapshot.
func (r *Replicator) Reset() { r.crcs = nil }

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

// Reconcile reads the database state and, if its checksum equals the last
// spooled position's, adopts it as the base state so capture resumes
// without a snapshot. It reports whether it matched. verify (optional)
// runs after the last page is read; its error is returned.
func (r *Replicator) Reconcile(pageSize, commit uint32, read PageReader, verify func() error) (bool, error) {
	pos := r.Pos()
	if pos.TXID == 0 || commit == 0 || r.broken.Load() {
		// A broken chain (files dropped from the spool) cannot be resumed
		// even where the state matches: the replica lacks what was dropped.
		return false, nil
	}
	c, err := scan(pageSize, commit, read)
	if err == nil && verify != nil {
		err = verify()
	}
	if err != nil {
		return false, err
	}
	if c.Checksum() != pos.PostApplyChecksum {
		return false, nil
	}
	r.crcs = c
	return true, nil
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
		if !p.wait(ctx, r.urge) {
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
	if !r.errActive || size() <= r.opts.SpoolMaxBytes {
		return false // a working replica drains any backlog; the bound is for outages
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

// Bounds of one merged upload.
const (
	maxMergeFiles = 1024
	maxMergeBytes = 64 << 20
)

// nextBatch returns the entries the next upload covers: the first pending
// entry and, if it is a level-0 file, the contiguous level-0 files after
// it. Under load this turns many small spool records into one object.
func (r *Replicator) nextBatch() []*spoolEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	n, size := 1, r.pending[0].Size
	if r.pending[0].Level == 0 {
		for n < len(r.pending) && n < maxMergeFiles {
			e := r.pending[n]
			if e.Level != 0 || e.MinTXID != r.pending[n-1].MaxTXID+1 || size+e.Size > maxMergeBytes {
				break
			}
			size += e.Size
			n++
		}
	}
	return append([]*spoolEntry(nil), r.pending[:n]...)
}

func (r *Replicator) uploadLoop(ctx context.Context) {
	backoff := r.opts.RetryMin
	var lastPut time.Time
	var interval time.Duration
	var p pacer
	if r.opts.MaxPutsPerSecond > 0 {
		interval = time.Duration(float64(time.Second) / r.opts.MaxPutsPerSecond)
	}
	for {
		if r.nextBatch() == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			}
			continue
		}
		// Keep to the PUT rate; what queues meanwhile joins this upload.
		// Without a cap (a local directory), uploads are paced by their
		// cost under sustained load instead (see pacer).
		if wait := time.Until(lastPut.Add(interval)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		if interval == 0 && !p.wait(ctx, r.uploadUrge) {
			return
		}
		batch := r.nextBatch()
		if batch == nil {
			continue // dropped by a spool overflow meanwhile
		}
		threads.Background()
		lastPut = time.Now()
		err := r.upload(ctx, batch)
		p.done(lastPut, txnCount(batch), time.Since(lastPut))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.setError(err)
			r.checkOverflow()
			wait := backoff
			if errors.Is(err, replica.ErrPermanent) {
				wait = r.opts.PermanentRetry
			}
			wait = jitter(wait)
			r.logger.Warn("upload failed", "file", batchName(batch), "retry_in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			backoff = min(backoff*2, r.opts.RetryMax)
			continue
		}
		backoff = r.opts.RetryMin
	}
}

// jitter spreads d by ±20% so that many clients retrying after a shared
// outage do not hit the store in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

func batchName(batch []*spoolEntry) string {
	return ltx.FormatFilename(batch[0].MinTXID, batch[len(batch)-1].MaxTXID)
}

// upload writes batch to the replica as one LTX file, merging several
// with ltx.Compactor.
func (r *Replicator) upload(ctx context.Context, batch []*spoolEntry) error {
	first, last := batch[0], batch[len(batch)-1]
	var src io.Reader
	if len(batch) == 1 {
		src = r.spool.reader(first)
	} else {
		rdrs := make([]io.Reader, len(batch))
		for i, e := range batch {
			rdrs[i] = r.spool.reader(e)
		}
		pr, pw := io.Pipe()
		cmp, err := ltx.NewCompactor(pw, rdrs)
		if err != nil {
			return fmt.Errorf("merge %s: %w", batchName(batch), err)
		}
		cmp.HeaderFlags = r.headerFlags()
		go func() {
			err := cmp.Compact(ctx)
			if err != nil {
				err = fmt.Errorf("merge %s: %w", batchName(batch), err)
			}
			pw.CloseWithError(err)
		}()
		defer pr.Close()
		src = pr
	}
	if _, err := r.client.WriteLTXFile(ctx, first.Level, first.MinTXID, last.MaxTXID, src); err != nil {
		return fmt.Errorf("write %s to replica: %w", batchName(batch), err)
	}
	for _, e := range batch {
		r.spool.release(e)
	}
	r.mu.Lock()
	// Remove the batch by identity: an overflow may have dropped it meanwhile.
	r.pending = slices.DeleteFunc(r.pending, func(e *spoolEntry) bool { return slices.Contains(batch, e) })
	if first.MinTXID == 1 {
		r.overflowed = false // a snapshot closes any gap
	}
	if last.MaxTXID > r.replicated.TXID {
		r.replicated = ltx.Pos{TXID: last.MaxTXID, PostApplyChecksum: last.Post}
	}
	r.uploads++
	r.errActive = false
	replicated := r.replicated
	r.notifyLocked()
	r.mu.Unlock()
	if r.opts.NoChecksum {
		r.savePosition(replicated)
	}
	return nil
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
	r.Urge()
	for {
		r.mu.Lock()
		done, ch := r.replicated.TXID >= txid, r.changed
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
	NeedsSnapshot  bool // the spool overflowed and no snapshot has reached the replica since
}

// Status returns the current status.
func (r *Replicator) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		Replica:        r.client.String(),
		LocalTXID:      r.pos.TXID,
		ReplicatedTXID: r.replicated.TXID,
		PendingFiles:   len(r.pending),
		PendingTXNs:    int64(r.pos.TXID - r.replicated.TXID),
		Uploads:        r.uploads,
	}
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
