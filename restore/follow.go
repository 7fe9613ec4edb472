package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	steps    int
}

// headEvery: every headEvery-th step lists the start of level 0 instead
// of what follows the position (a source that started over below it).
const headEvery = 30

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
	f.steps++
	if f.steps%headEvery == 0 {
		// This interval's one request looks at the start of level 0
		// instead: a file there newer than the follower's position that
		// ends at or before it means the source started over.
		head, err := replica.ListFrom(ctx, f.client, 0, 0, 1)
		if err != nil {
			f.outage(err)
			return nil
		}
		if len(head) == 1 && head[0].MaxTXID <= f.state.TXID && head[0].CreatedAt.After(f.state.AppliedAt.Add(time.Second)) {
			all, err := ListFiles(ctx, f.client)
			if err != nil {
				f.outage(err)
				return nil
			}
			return f.rebuild(ctx, all, fmt.Sprintf("level-0 file %s, newer than TXID %d, ends at or before it: the source started over", fileName(head[0]), f.state.TXID))
		}
		return nil
	}
	// What starts at or after the position: one request on S3, however
	// many files level 0 holds.
	l0, err := replica.ListFrom(ctx, f.client, 0, f.state.TXID, 0)
	if err != nil {
		f.outage(err)
		return nil
	}
	var latest ltx.TXID
	for _, fi := range l0 {
		fi.Level = 0
		latest = max(latest, fi.MaxTXID)
	}
	if latest <= f.state.TXID {
		f.recovered()
		return nil // nothing new: one LIST, nothing else
	}
	chain, reach := followChain(l0, f.state.TXID)
	if len(chain) == 0 || reach < latest {
		// Level 0 does not continue the database (compacted away since):
		// every level.
		all, err := ListFiles(ctx, f.client)
		if err != nil {
			f.outage(err)
			return nil
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

// grow makes sums hold index pgno.
func (f *Follower) grow(pgno uint32) {
	if int(pgno) >= len(f.sums) {
		n := max(int(pgno)+1, 2*len(f.sums))
		s := make([]ltx.Checksum, n)
		copy(s, f.sums)
		f.sums = s
	}
}
