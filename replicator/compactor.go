package replicator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// Compaction of the replica's files into levels (package compact plans
// it; this file carries the plans out). Only the owner compacts, from its
// own goroutine: uploads of new commits never wait for it, and it waits
// for nothing while no compaction or expiry is pending (no timer at all
// on an idle replica).

// Clock is the replicator's time. Tests drive days of compaction with a
// fake one.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// catalog is the owner's view of the replica's files by level: loaded from
// the listing made when the uploader confirms the replica's position, then
// kept up to date with every upload, compaction and deletion, so the
// planner and status need no LIST.
//
// Its operations cost O(1) (amortized) per upload, not O(files): at 100
// uploads a second a directory replica holds ~30,000 level-0 files
// (l0-retention of 5 minutes), and re-sorting, cloning and summing them at
// every upload and every status publish cost a 256 MiB database's process
// 20 s of CPU a minute (tests/bench_load.sh, perf).
type catalog struct {
	mu     sync.Mutex
	loaded bool
	lv     compact.Levels
	files  int   // files in lv
	bytes  int64 // their sizes
}

// set replaces the view with a listing made at now. A file listed with a
// time after now (a store whose clock runs ahead) is taken as made now, once:
// clamped at every plan instead, it would never age.
func (c *catalog) set(lv compact.Levels, now time.Time) {
	for _, files := range lv {
		for _, f := range files {
			if f.CreatedAt.After(now) {
				f.CreatedAt = now
			}
		}
	}
	var own compact.Levels // its own slices: remove's DeleteFunc clears the tail of the ones it was given, which confirm still reads
	files, bytes := 0, int64(0)
	for i := range lv {
		own[i] = slices.Clone(lv[i])
		files += len(own[i])
		for _, f := range own[i] {
			bytes += f.Size
		}
	}
	c.mu.Lock()
	c.lv, c.loaded, c.files, c.bytes = own, true, files, bytes
	c.mu.Unlock()
}

// add records a file written to the replica.
func (c *catalog) add(info *ltx.FileInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		return // the listing at confirm will have it
	}
	files := c.lv[info.Level]
	if n := len(files); n == 0 || files[n-1].MinTXID < info.MinTXID {
		// The usual case, a file past every other of its level: appended.
		c.lv[info.Level] = append(files, info)
		c.files, c.bytes = c.files+1, c.bytes+info.Size
		return
	}
	files = slices.DeleteFunc(files, func(f *ltx.FileInfo) bool {
		if f.MinTXID == info.MinTXID && f.MaxTXID == info.MaxTXID { // rewritten
			c.files, c.bytes = c.files-1, c.bytes-f.Size
			return true
		}
		return false
	})
	files = append(files, info)
	replica.SortFileInfos(files)
	c.lv[info.Level] = files
	c.files, c.bytes = c.files+1, c.bytes+info.Size
}

// remove drops deleted files.
func (c *catalog) remove(infos []*ltx.FileInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gone := make(map[[2]ltx.TXID]bool, len(infos))
	levels := map[int]bool{}
	for _, info := range infos {
		gone[[2]ltx.TXID{info.MinTXID, info.MaxTXID}] = true
		levels[info.Level] = true
	}
	for level := range levels { // one pass per level, not per file
		c.lv[level] = slices.DeleteFunc(c.lv[level], func(f *ltx.FileInfo) bool {
			if gone[[2]ltx.TXID{f.MinTXID, f.MaxTXID}] {
				c.files, c.bytes = c.files-1, c.bytes-f.Size
				return true
			}
			return false
		})
	}
}

// newest returns the last file of level (by TXID), if any.
func (c *catalog) newest(level int) (*ltx.FileInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files := c.lv[level]
	if !c.loaded || len(files) == 0 {
		return nil, false
	}
	return files[len(files)-1], true
}

// levels returns a copy of the view, and whether it is loaded.
func (c *catalog) levels() (compact.Levels, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lv compact.Levels
	for i := range c.lv {
		lv[i] = slices.Clone(c.lv[i])
	}
	return lv, c.loaded
}

// totals returns the files and bytes the replica holds and when its
// newest snapshot was made.
func (c *catalog) totals() (files int, bytes int64, lastSnapshot time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files, bytes = c.files, c.bytes
	for _, f := range c.lv[replica.SnapshotLevel] {
		if f.CreatedAt.After(lastSnapshot) {
			lastSnapshot = f.CreatedAt
		}
	}
	return files, bytes, lastSnapshot
}

// listLevels lists every level of the replica.
func listLevels(ctx context.Context, client replica.Client) (compact.Levels, error) {
	var lv compact.Levels
	for level := range lv {
		infos, err := client.LTXFiles(ctx, level)
		if err != nil {
			return lv, fmt.Errorf("list replica level %d: %w", level, err)
		}
		for _, info := range infos {
			info.Level = level
		}
		lv[level] = infos
	}
	return lv, nil
}

// compactLoop runs the compactions and level-0 expiries the plan makes due,
// then sleeps until the next is due or a new file reaches the replica.
func (r *Replicator) compactLoop(ctx context.Context) {
	backoff := r.opts.RetryMin
	for {
		var timer <-chan time.Time
		threads.Background()
		stepped := time.Now()
		worked, due, err := r.compactStep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.logger.Warn("compaction failed; the files stay as they are", "retry_in", backoff, "err", err)
			r.setCompactError(err)
			// The backoff holds under load too: a new file reaching the
			// replica (compactWake, at every upload) does not end it. It
			// did, and a failing job was retried ~90 times a second.
			select {
			case <-ctx.Done():
				return
			case <-r.clock.After(backoff):
			}
			backoff = min(2*backoff, r.opts.RetryMax)
			continue
		case worked:
			backoff = r.opts.RetryMin
			continue // more may be due
		case !due.IsZero():
			timer = r.clock.After(due.Sub(r.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-r.compactWake:
			// A file reached the replica: under load, at every upload.
			// A step reads the whole catalog (tens of thousands of
			// level-0 files at 100 uploads a second), so look again at
			// most every compactCheckEvery; what arrives meanwhile is
			// seen then (windows end on whole seconds).
			if wait := compactCheckEvery - time.Since(stepped); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				case <-timer:
				}
			}
		case <-timer:
		}
	}
}

// compactCheckEvery is the least time between two compaction steps that
// a new file in the replica starts (wall time).
const compactCheckEvery = 250 * time.Millisecond

// compactStep runs one compaction or one expiry of level-0 files, if one
// is due now, and reports whether it did; otherwise it returns when the
// next falls due (zero: nothing is pending, or the replica's files are not
// known yet).
func (r *Replicator) compactStep(ctx context.Context) (worked bool, due time.Time, err error) {
	lv, loaded := r.cat.levels()
	if !loaded {
		return false, time.Time{}, nil
	}
	cfg, now := r.opts.Compaction, r.clock.Now()
	job, ok, due := compact.Next(cfg, &lv, now)
	var jobErr error
	if ok {
		if jobErr = r.compactJob(ctx, job); jobErr == nil || ctx.Err() != nil {
			return true, time.Time{}, jobErr
		}
		// A job that fails (an unreadable input, a level the store
		// refuses) must not hold back expiry and retention, which need no
		// new file: they ran only when no job was due, and one failing
		// level let the whole replica grow without bound. The error
		// stands, so the loop backs off before trying the job again.
	}
	if plan := compact.SettledPlan(&lv); len(plan) > 0 && jobErr == nil {
		snap, why, next := compact.SnapshotDue(cfg, &lv, plan, r.dbBytes.Load(), now)
		if snap {
			return true, time.Time{}, r.snapshotJob(ctx, plan, why)
		}
		due = earliest(due, next)
	}
	expired, next := compact.L0Expired(cfg, &lv, now)
	if len(expired) > 0 {
		return true, time.Time{}, errors.Join(jobErr, r.expire(ctx, expired, "level-0 files level 1 holds"))
	}
	due = earliest(due, next)
	expired, next = compact.RetentionExpired(cfg, &lv, now)
	if len(expired) > 0 {
		return true, time.Time{}, errors.Join(jobErr, r.expire(ctx, expired, "files older than retention"))
	}
	return false, earliest(due, next), jobErr
}

// snapshotJob builds a snapshot from the replica's own files: the settled
// part of the latest restore's plan (the newest snapshot, then the
// highest-level files that lead to the last level-1 boundary) merged into
// one level-9 file, without reading
// the database (no read transaction that would hold back its
// checkpoints). At most compact.MaxInputs files: a longer plan yields an
// earlier snapshot, and the next step another.
func (r *Replicator) snapshotJob(ctx context.Context, plan []*ltx.FileInfo, why string) error {
	plan = plan[:min(len(plan), compact.MaxInputs)]
	job := compact.Job{Level: replica.SnapshotLevel, Inputs: plan}
	if err := r.merge(ctx, job); err != nil {
		return err
	}
	r.mu.Lock()
	r.snapshots++
	r.mu.Unlock()
	r.logger.Info("snapshot built from the replica's files", "txid", job.MaxTXID(), "inputs", len(plan), "why", why)
	return nil
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// compactJob merges the job's inputs into one file at its level. The
// inputs stay: level-0 files expire later (L0Expired), higher levels when
// retention no longer needs them.
func (r *Replicator) compactJob(ctx context.Context, job compact.Job) error {
	if err := r.merge(ctx, job); err != nil {
		return err
	}
	r.mu.Lock()
	r.compactions++
	r.mu.Unlock()
	poke(r.compactWake) // the next level may be due now
	return nil
}

// merge writes the job's inputs, merged (merge.go), as one file at its
// level, and records it. Inputs read from the store are verified as they
// are merged; local copies are this process's own spool records.
func (r *Replicator) merge(ctx context.Context, job compact.Job) error {
	name := replica.LTXFilePath(job.Level, job.MinTXID(), job.MaxTXID())
	ins := make([]mergeInput, 0, len(job.Inputs))
	defer func() {
		for _, in := range ins {
			if c, ok := in.r.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}()
	budget := localInputs
	for i, f := range job.Inputs {
		local, done, ok := r.takeCopy(f, budget)
		if ok {
			defer done()
		}
		// The first input always comes from the store: that read also
		// finds a replica emptied or replaced underneath (ErrNotFound).
		if ok && i > 0 {
			ins = append(ins, local...)
			budget -= len(local)
			continue
		}
		rc, err := r.client.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID)
		if err != nil {
			err = fmt.Errorf("compact %s: open %s: %w", name, replica.LTXFilePath(f.Level, f.MinTXID, f.MaxTXID), err)
			if errors.Is(err, replica.ErrNotFound) {
				r.recheck(err) // the replica was changed underneath
			}
			return err
		}
		// The merge's read buffer is sized to the file: a level-1 job
		// merges up to compact.MaxInputs small level-0 files, each open at
		// once (64 KiB each made a default-schedule process at 100 txn/s
		// peak 46 MiB above plain SQLite, tests/bench_load.sh).
		ins = append(ins, mergeInput{r: rc, size: f.Size, verify: true})
	}
	pr := r.merged(ctx, ins, name)
	defer pr.Close()
	if r.puts != nil {
		r.puts.Reserve() // owed, not waited for: the uploader's next PUT waits longer
	}
	info, err := r.client.WriteLTXFile(ctx, job.Level, job.MinTXID(), job.MaxTXID(), pr)
	if err != nil {
		r.noteFramePages(err)
		return fmt.Errorf("compact %s: %w", name, err)
	}
	info.Level, info.CreatedAt = job.Level, r.clock.Now()
	r.cat.add(info)
	r.mu.Lock()
	r.lastCompactionAt = info.CreatedAt
	r.compactErr = nil
	r.notifyLocked()
	r.mu.Unlock()
	r.logger.Debug("compacted", "file", name, "inputs", len(job.Inputs), "bytes", info.Size)
	return nil
}

// deleteChunk is the most files expire asks the store to delete at once
// (S3's DeleteObjects takes 1,000 keys).
const deleteChunk = 1000

// expire deletes files the replica no longer needs (what says so).
// The files go in the order given, in requests of at most deleteChunk,
// and none after a request that failed: the planners order them so that
// whatever is left restores every point it lists.
func (r *Replicator) expire(ctx context.Context, files []*ltx.FileInfo, what string) error {
	for chunk := range slices.Chunk(files, deleteChunk) {
		if err := r.client.DeleteLTXFiles(ctx, chunk); err != nil {
			return fmt.Errorf("delete %d %s: %w", len(files), what, err)
		}
		r.cat.remove(chunk)
		r.dropCopies(chunk)
	}
	r.logger.Debug("deleted from the replica", "files", len(files), "what", what)
	return nil
}

func (r *Replicator) setCompactError(err error) {
	r.mu.Lock()
	r.compactErr = err
	r.notifyLocked()
	r.mu.Unlock()
}
