package restore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/fsutil"
	"github.com/litestream-vfs/litestream_vfs/replica"
)

// A Follower keeps a database current with a replica (ltxrestore -follow):
// every interval it lists the replica's level 0 (one LIST), and applies
// the files after the TXID it holds to the database in one write
// transaction of the Sink, so a reader of the database sees the state
// before or after, never a mix. Every file with checksums is checked as it
// is applied: the database's checksum, kept page by page, must equal the
// file's post-apply checksum, or the batch is rolled back and the
// database is rebuilt in place from the newest snapshot (a history that
// diverged: a source that started over). Files compacted away since are
// bridged by the higher levels, listed only then.
//
// Its position is recorded in a state file (FollowState), written before
// each batch commits (the target) and after (the TXID): a follower killed
// at any point resumes from it, and the files it applies again take the
// database to the same state (each holds the last version of its pages).
type Follower struct {
	client replica.Client
	sink   Sink
	opts   FollowOptions
	state  FollowState
	log    *slog.Logger

	pageSize uint32
	size     uint32         // pages
	sums     []ltx.Checksum // per page (index pgno), without ltx.ChecksumFlag; 0 for the lock page and past size
	total    ltx.Checksum   // XOR of sums
	zero     []byte
	down     error // the store's last failure, while it lasts
	foreign  bool  // written by another process; not rebuilt yet
}

// Sink is the database a Follower writes: cmd/ltxrestore's writes pages
// through SQLite (its sqlite_dbpage table), so readers' locks and the WAL
// keep every batch atomic.
type Sink interface {
	// PageSize returns the database's page size in bytes.
	PageSize(ctx context.Context) (uint32, error)
	// ReadPages calls fn with every page of the database, in order.
	ReadPages(ctx context.Context, fn func(pgno uint32, data []byte) error) error
	// Begin starts the write transaction of one batch.
	Begin(ctx context.Context) (SinkTx, error)
	// ForeignWrite reports whether something other than the follower
	// wrote the database since the last call (or the last batch).
	ForeignWrite(ctx context.Context) (bool, error)
}

// SinkTx is one batch's write transaction.
type SinkTx interface {
	WritePage(pgno uint32, data []byte) error
	// Truncate drops every page after n; the last write of a batch.
	Truncate(n uint32) error
	Commit() error
	Rollback() error
}

// FollowOptions configures a Follower.
type FollowOptions struct {
	// Interval is the time between two listings of the replica.
	Interval time.Duration
	// StatePath is the follower's state file (FollowState, JSON).
	StatePath string
	// Logger receives what happens; nil discards it.
	Logger *slog.Logger
	// Applied, if set, is called after each committed batch.
	Applied func(FollowBatch)
}

// FollowBatch describes one committed batch.
type FollowBatch struct {
	From, To ltx.TXID
	Files    int
	Pages    int
	Rebuilt  bool // from the newest snapshot, not a continuation
	Took     time.Duration
}

// FollowState is what the state file records.
type FollowState struct {
	Replica string   `json:"replica"` // the replica URL (no secrets)
	TXID    ltx.TXID `json:"txid"`    // the database holds the state after it
	// Target, when past TXID, is the TXID a batch was committing when the
	// state was written: the database holds TXID's state or Target's.
	Target ltx.TXID `json:"target,omitempty"`
	// AppliedAt is the newest CreatedAt of the level-0 files that end at
	// or before TXID when it was reached: a level-0 file created later
	// that ends at or before TXID means the source started over below it.
	AppliedAt time.Time `json:"applied_at"`
}

// ErrPageSize is returned (wrapped) when the replica's page size is not
// the database's: the source was rebuilt with another page size, which
// cannot be applied in place.
var ErrPageSize = errors.New("page size changed")

// ReadFollowState reads the state file at path.
func ReadFollowState(path string) (FollowState, error) {
	var st FollowState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("follow state %s: %w", path, err)
	}
	return st, nil
}

// WriteFollowState writes st to path atomically and durably.
func WriteFollowState(path string, st FollowState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write follow state: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		_ = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write follow state: %w", err)
	}
	return nil
}

// NewFollower returns a follower of client into sink, from the state
// recorded at opts.StatePath. It reads the whole database once, for the
// checksums of its pages.
func NewFollower(ctx context.Context, client replica.Client, sink Sink, opts FollowOptions) (*Follower, error) {
	st, err := ReadFollowState(opts.StatePath)
	if err != nil {
		return nil, err
	}
	f := &Follower{client: client, sink: sink, opts: opts, state: st, log: opts.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.opts.Interval <= 0 {
		f.opts.Interval = time.Second
	}
	if f.pageSize, err = sink.PageSize(ctx); err != nil {
		return nil, err
	}
	f.zero = make([]byte, f.pageSize)
	if err := f.readSums(ctx); err != nil {
		return nil, err
	}
	if f.state.AppliedAt.IsZero() {
		// Just restored: the level-0 files it covers are not news.
		l0, err := client.LTXFiles(ctx, 0)
		if err != nil {
			return nil, fmt.Errorf("list level 0 of %s: %w", client, err)
		}
		for _, fi := range l0 {
			if fi.MaxTXID <= f.state.TXID && fi.CreatedAt.After(f.state.AppliedAt) {
				f.state.AppliedAt = fi.CreatedAt
			}
		}
	}
	return f, nil
}

// readSums computes the checksum of every page of the database.
func (f *Follower) readSums(ctx context.Context) error {
	f.sums, f.size, f.total = nil, 0, 0
	lock := ltx.LockPgno(f.pageSize)
	h := ltx.NewHasher()
	err := f.sink.ReadPages(ctx, func(pgno uint32, data []byte) error {
		f.grow(pgno)
		if pgno != lock {
			f.sums[pgno] = pageSum(h, pgno, data)
			f.total ^= f.sums[pgno]
		}
		f.size = max(f.size, pgno)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the database: %w", err)
	}
	return nil
}

// TXID returns the TXID the database holds.
func (f *Follower) TXID() ltx.TXID { return f.state.TXID }

// Run steps every interval until ctx ends (then it returns nil) or a step
// fails for good (a state file that cannot be written, a page size
// change). A store that fails is retried at the next interval, the
// database keeping its last state.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.opts.Interval)
	defer t.Stop()
	for {
		if err := f.Step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step lists level 0 and applies what follows the database's TXID. A
// database another process wrote is first rebuilt from the replica.
func (f *Follower) Step(ctx context.Context) error {
	if foreign, err := f.sink.ForeignWrite(ctx); err != nil {
		return f.transient(fmt.Errorf("check the database: %w", err))
	} else if foreign {
		f.log.Error("a process other than the follower wrote the database: rebuilding it from the replica", "txid", f.state.TXID)
		if err := f.readSums(ctx); err != nil {
			return f.transient(err)
		}
		all, err := ListFiles(ctx, f.client)
		if err != nil {
			f.outage(err)
			f.foreign = true // rebuilt once the store answers
			return nil
		}
		return f.rebuild(ctx, all, "written by another process")
	}
	if f.foreign {
		f.foreign = false
		all, err := ListFiles(ctx, f.client)
		if err != nil {
			f.outage(err)
			f.foreign = true
			return nil
		}
		return f.rebuild(ctx, all, "written by another process")
	}
	l0, err := f.client.LTXFiles(ctx, 0)
	if err != nil {
		f.outage(err)
		return nil
	}
	var latest ltx.TXID
	startedOver := false
	for _, fi := range l0 {
		fi.Level = 0
		latest = max(latest, fi.MaxTXID)
		if fi.MaxTXID <= f.state.TXID && fi.CreatedAt.After(f.state.AppliedAt.Add(time.Second)) {
			startedOver = true
		}
	}
	if !startedOver && latest <= f.state.TXID {
		f.recovered()
		return nil // nothing new: one LIST, nothing else
	}
	chain, reach := followChain(l0, f.state.TXID)
	if startedOver || len(chain) == 0 || reach < latest {
		// Level 0 does not continue the database (compacted away since,
		// or a new history): every level.
		all, err := ListFiles(ctx, f.client)
		if err != nil {
			f.outage(err)
			return nil
		}
		if startedOver {
			return f.rebuild(ctx, all, fmt.Sprintf("a level-0 file newer than TXID %d ends at or before it: the source started over", f.state.TXID))
		}
		chain, reach = followChain(all, f.state.TXID)
		if len(chain) == 0 {
			return f.rebuild(ctx, all, fmt.Sprintf("no file continues TXID %d", f.state.TXID))
		}
	}
	f.recovered()
	err = f.apply(ctx, chain, l0, false)
	if errors.Is(err, ErrChecksumMismatch) {
		all, lerr := ListFiles(ctx, f.client)
		if lerr != nil {
			f.outage(lerr)
			return nil
		}
		return f.rebuild(ctx, all, err.Error())
	}
	return f.transient(err)
}

// rebuild rewrites the database in place from the newest snapshot and
// the chain after it: one batch, so readers see the old state or the new.
func (f *Follower) rebuild(ctx context.Context, all []*ltx.FileInfo, why string) error {
	chain, err := plan(f.client.String(), all, 0)
	if err != nil {
		f.log.Error("cannot follow the replica; keeping the database as it is", "txid", f.state.TXID, "why", why, "err", err)
		return nil
	}
	f.log.Warn("rebuilding the database from the newest snapshot", "why", why, "snapshot", fileName(chain[0]))
	var l0 []*ltx.FileInfo
	for _, fi := range all {
		if fi.Level == 0 {
			l0 = append(l0, fi)
		}
	}
	return f.transient(f.apply(ctx, chain, l0, true))
}

// transient passes on the errors a later step cannot get past and logs
// the others (a store failing mid-file): the next step tries again.
func (f *Follower) transient(err error) error {
	if err == nil || errors.Is(err, ErrPageSize) || errors.Is(err, errState) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	f.outage(err)
	return nil
}

// errState wraps failures to record the state: the follower stops rather
// than apply without a record it can resume from.
var errState = errors.New("follow state")

func (f *Follower) outage(err error) {
	if f.down == nil {
		f.log.Warn("the replica cannot be read; serving the last state", "txid", f.state.TXID, "err", err)
	}
	f.down = err
}

func (f *Follower) recovered() {
	if f.down != nil {
		f.log.Info("the replica can be read again", "txid", f.state.TXID)
		f.down = nil
	}
}

// apply writes chain to the database in one transaction. A file with
// checksums must leave the database with its post-apply checksum; if it
// does not, nothing is committed and the error wraps ErrChecksumMismatch.
// l0 is the level-0 listing the chain was planned from.
func (f *Follower) apply(ctx context.Context, chain, l0 []*ltx.FileInfo, rebuilt bool) (err error) {
	t0 := time.Now()
	tx, err := f.sink.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin a batch: %w", err)
	}
	undo := map[uint32]ltx.Checksum{}
	oldSize, oldTotal := f.size, f.total
	committed := false
	defer func() {
		if committed {
			return
		}
		_ = tx.Rollback()
		for pgno, sum := range undo {
			f.sums[pgno] = sum
		}
		f.size, f.total = oldSize, oldTotal
	}()
	b := &batch{f: f, tx: tx, undo: undo, sinkSize: f.size, zeroed: map[uint32]bool{}, h: ltx.NewHasher()}
	for _, fi := range chain {
		if err := b.file(ctx, fi); err != nil {
			return err
		}
	}
	if err := b.finish(); err != nil {
		return err
	}
	to := chain[len(chain)-1].MaxTXID
	appliedAt := f.state.AppliedAt
	if rebuilt {
		appliedAt = time.Time{}
	}
	for _, fi := range l0 {
		if fi.MaxTXID <= to && fi.CreatedAt.After(appliedAt) {
			appliedAt = fi.CreatedAt // covered now, applied or not
		}
	}
	st := f.state
	st.Target = to
	if err := WriteFollowState(f.opts.StatePath, st); err != nil {
		return fmt.Errorf("%w: %w", errState, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	from := f.state.TXID
	f.state = FollowState{Replica: st.Replica, TXID: to, AppliedAt: appliedAt}
	if err := WriteFollowState(f.opts.StatePath, f.state); err != nil {
		return fmt.Errorf("%w: %w", errState, err)
	}
	ev := FollowBatch{From: from, To: to, Files: len(chain), Pages: b.pages, Rebuilt: rebuilt, Took: time.Since(t0)}
	f.log.Info("applied", "from", from, "to", to, "files", ev.Files, "pages", ev.Pages, "took", ev.Took)
	if f.opts.Applied != nil {
		f.opts.Applied(ev)
	}
	return nil
}

// batch is one apply's bookkeeping: the pages' checksums change as pages
// are written (undo keeps their values before the batch), and the sink
// truncates only at the end, so pages that a file cut off and a later
// file's growth brought back without writing them are zeroed then.
type batch struct {
	f        *Follower
	tx       SinkTx
	undo     map[uint32]ltx.Checksum
	sinkSize uint32          // pages in the sink (no truncation until the end)
	zeroed   map[uint32]bool // pages to write as zeros at the end
	pages    int
	h        hash.Hash64
}

func (b *batch) set(pgno uint32, sum ltx.Checksum) {
	f := b.f
	f.grow(pgno)
	if _, ok := b.undo[pgno]; !ok {
		b.undo[pgno] = f.sums[pgno]
	}
	f.total ^= f.sums[pgno] ^ sum
	f.sums[pgno] = sum
}

// extend makes pages size+1..n part of the database, as zeros: written
// as such at the end unless a file of the batch writes them (the sink may
// still hold what a page cut off earlier in the batch had, or not have
// the page at all).
func (b *batch) extend(n uint32) {
	f := b.f
	lock := ltx.LockPgno(f.pageSize)
	for q := f.size + 1; q <= n; q++ {
		if q == lock {
			continue
		}
		b.set(q, pageSum(b.h, q, f.zero))
		b.zeroed[q] = true
	}
	f.size = max(f.size, n)
}

// file applies one LTX file.
func (b *batch) file(ctx context.Context, fi *ltx.FileInfo) error {
	f := b.f
	name := fileName(fi)
	rc, err := f.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer func() { _ = rc.Close() }()
	dec := ltx.NewDecoder(newFrameGuard(bufio.NewReaderSize(&ctxReader{ctx: ctx, r: rc}, 256<<10)))
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("%w: %s: decode header: %w", ErrInvalidFile, name, err)
	}
	hdr := dec.Header()
	switch {
	case hdr.MinTXID != fi.MinTXID || hdr.MaxTXID != fi.MaxTXID:
		return fmt.Errorf("%w: %s: header covers txids %s-%s", ErrInvalidFile, name, hdr.MinTXID, hdr.MaxTXID)
	case hdr.PageSize != f.pageSize:
		return fmt.Errorf("%w: %s has %d-byte pages, the database %d: restore afresh (ltxrestore -follow -f)", ErrPageSize, name, hdr.PageSize, f.pageSize)
	}
	lock := ltx.LockPgno(hdr.PageSize)
	buf := make([]byte, hdr.PageSize)
	var ph ltx.PageHeader
	for n := 0; ; n++ {
		if n%ctxCheckPages == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%w: %s: decode page %d: %w", ErrInvalidFile, name, n+1, err)
		}
		if ph.Pgno == lock || ph.Pgno > hdr.Commit {
			return fmt.Errorf("%w: %s: page %d (lock page %d, commit %d)", ErrInvalidFile, name, ph.Pgno, lock, hdr.Commit)
		}
		if ph.Pgno > f.size+1 {
			b.extend(ph.Pgno - 1)
		}
		if err := b.tx.WritePage(ph.Pgno, buf); err != nil {
			return fmt.Errorf("write page %d: %w", ph.Pgno, err)
		}
		delete(b.zeroed, ph.Pgno)
		b.set(ph.Pgno, pageSum(b.h, ph.Pgno, buf))
		f.size = max(f.size, ph.Pgno)
		b.sinkSize = max(b.sinkSize, ph.Pgno)
		b.pages++
	}
	if err := dec.Close(); errors.Is(err, ltx.ErrChecksumMismatch) {
		return fmt.Errorf("%w: %s: file checksum: %w", ErrChecksumMismatch, name, err)
	} else if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidFile, name, err)
	}
	// The database's size after the file.
	if hdr.Commit > f.size {
		b.extend(hdr.Commit)
	}
	for q := hdr.Commit + 1; q <= f.size; q++ {
		b.set(q, 0)
		delete(b.zeroed, q)
	}
	f.size = hdr.Commit
	if hdr.NoChecksum() {
		return nil
	}
	if got, want := ltx.ChecksumFlag|f.total, dec.Trailer().PostApplyChecksum; got != want {
		return fmt.Errorf("%w: after %s the database's checksum is %s, the file's post-apply checksum %s: the database is not the source's state before it",
			ErrChecksumMismatch, name, got, want)
	}
	return nil
}

// finish writes the zeroed pages and cuts the sink to the database's size.
func (b *batch) finish() error {
	for q := range b.zeroed {
		if q <= b.f.size {
			if err := b.tx.WritePage(q, b.f.zero); err != nil {
				return fmt.Errorf("write page %d: %w", q, err)
			}
		}
	}
	if b.sinkSize > b.f.size {
		if err := b.tx.Truncate(b.f.size); err != nil {
			return fmt.Errorf("truncate to %d pages: %w", b.f.size, err)
		}
	}
	return nil
}

// grow makes sums hold index pgno.
func (f *Follower) grow(pgno uint32) {
	if int(pgno) >= len(f.sums) {
		n := max(int(pgno)+1, 2*len(f.sums))
		s := make([]ltx.Checksum, n)
		copy(s, f.sums)
		f.sums = s
	}
}
