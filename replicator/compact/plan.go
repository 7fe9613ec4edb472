// Package compact plans the compaction of a replica's LTX files into
// levels, as Litestream 0.5 lays them out, and which files the replica no
// longer needs. It is pure: it sees file listings and a time, never a
// store; the replicator carries its plans out.
//
// Level 0 holds the shipped files; level n (1 ≤ n ≤ len(Intervals)) holds
// merges of level n−1 files, at most one per window of its interval
// (windows aligned to the clock, as Litestream's are). A level-n file
// merges the level n−1 files after level n's highest TXID, so each level's
// files cover contiguous TXID ranges and a restore can read the highest
// level that reaches its target, then lower ones.
package compact

import (
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// DefaultIntervals are Litestream 0.5's level intervals: 30 s, 5 min, 1 h.
var DefaultIntervals = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}

// DefaultL0Retention is how long level-0 files stay once level 1 covers
// them (Litestream's default).
const DefaultL0Retention = 5 * time.Minute

// MaxLevels is the most compaction levels there can be: levels 1..8, below
// the snapshot level.
const MaxLevels = replica.SnapshotLevel - 1

// MaxInputs bounds the files one compaction merges (each is an open reader
// with a page buffer); a longer run is merged in several steps.
const MaxInputs = 256

// Config is the compaction schedule.
type Config struct {
	// Intervals of levels 1, 2, …; none disables compaction.
	Intervals []time.Duration
	// L0Retention is how long a level-0 file stays after level 1 covers
	// it.
	L0Retention time.Duration
	// Retention is how far back point-in-time restore must reach (0: the
	// replica keeps everything); see RetentionExpired.
	Retention time.Duration
	// SnapshotInterval, SnapshotMaxFiles and SnapshotMaxRatio say when a
	// new snapshot is due (0: never for that reason); see SnapshotDue.
	SnapshotInterval time.Duration
	SnapshotMaxFiles int
	SnapshotMaxRatio float64
}

// Defaults returns Litestream's schedule: levels of 30 s, 5 min and 1 h,
// level-0 files kept 5 min, 24 h of point-in-time restore, a snapshot at
// least daily, and this package's bounds on what a latest restore reads.
func Defaults() Config {
	return Config{
		Intervals:        slices.Clone(DefaultIntervals),
		L0Retention:      DefaultL0Retention,
		Retention:        DefaultRetention,
		SnapshotInterval: DefaultSnapshotInterval,
		SnapshotMaxFiles: DefaultSnapshotMaxFiles,
		SnapshotMaxRatio: DefaultSnapshotMaxRatio,
	}
}

// Levels holds a replica's files by level, each ordered by MinTXID then
// MaxTXID (as replica.Client.LTXFiles returns them).
type Levels [replica.MaxLevel + 1][]*ltx.FileInfo

// Job is one compaction: Inputs, contiguous files of level Level−1, merge
// into one file at Level.
type Job struct {
	Level  int
	Inputs []*ltx.FileInfo
}

// MinTXID and MaxTXID are the range of the file the job writes.
func (j Job) MinTXID() ltx.TXID { return j.Inputs[0].MinTXID }
func (j Job) MaxTXID() ltx.TXID { return j.Inputs[len(j.Inputs)-1].MaxTXID }

// maxTXID is the highest TXID of level files (0 if none).
func maxTXID(files []*ltx.FileInfo) ltx.TXID {
	var m ltx.TXID
	for _, f := range files {
		m = max(m, f.MaxTXID)
	}
	return m
}

// created is a file's creation time as the planner trusts it: never after
// now (a store whose clock runs ahead must not postpone compaction; the
// replicator also takes such a file as made when it listed it, so that it
// ages).
func created(f *ltx.FileInfo, now time.Time) time.Time {
	if f.CreatedAt.After(now) {
		return now
	}
	return f.CreatedAt
}

// candidates returns the first contiguous run of files of level after
// base (MinTXID > base), at most MaxInputs long. Files that straddle base
// are skipped: level n already covers their start.
func candidates(files []*ltx.FileInfo, base ltx.TXID) []*ltx.FileInfo {
	var run []*ltx.FileInfo
	for _, f := range files {
		if f.MinTXID <= base {
			continue
		}
		if n := len(run); n > 0 && f.MinTXID != run[n-1].MaxTXID+1 {
			if f.MinTXID <= run[n-1].MaxTXID {
				continue // overlaps the run (a duplicate range): the run has it
			}
			break // a gap: the run ends; what follows is compacted next
		}
		run = append(run, f)
		if len(run) == MaxInputs {
			break
		}
	}
	return run
}

// Next returns the compaction due at now, the lowest level first, and
// whether there is one. If there is none, due is when the next one falls
// due, or the zero time if none is pending (no level has files its next
// level lacks): an idle replica needs no timer.
//
// Level n is due once the window of its interval in which its oldest
// candidate was created has ended, and at most once per window (not in
// the window of its newest file) unless candidates of an earlier window
// are left (a job holds at most MaxInputs files).
func Next(cfg Config, lv *Levels, now time.Time) (job Job, ok bool, due time.Time) {
	for i, interval := range cfg.Intervals {
		level := i + 1
		if level > MaxLevels || interval <= 0 {
			break
		}
		run := candidates(lv[level-1], maxTXID(lv[level]))
		if len(run) == 0 {
			continue
		}
		first := created(run[0], now)
		at := first.Truncate(interval).Add(interval)
		if n := len(lv[level]); n > 0 {
			// Once per window: candidates of the window level n last
			// compacted in wait for it to end. Candidates of an earlier
			// window (a job cut at MaxInputs left them) are due at once:
			// at 10 uploads a second a 30 s window has 300 level-0 files,
			// and one job a window let 44 more pile up in each.
			if w := created(newest(lv[level]), now).Truncate(interval); !first.Before(w) {
				at = later(at, w.Add(interval))
			}
		}
		if !at.After(now) {
			return Job{Level: level, Inputs: run}, true, time.Time{}
		}
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	return Job{}, false, due
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// newest returns the most recently created of files.
func newest(files []*ltx.FileInfo) *ltx.FileInfo {
	return slices.MaxFunc(files, func(a, b *ltx.FileInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
}

// Covered reports whether one of files (ordered by MinTXID) holds f's
// whole TXID range.
func Covered(files []*ltx.FileInfo, f *ltx.FileInfo) bool { return covering(files, f) != nil }

// covering returns the file of files (ordered by MinTXID) that holds f's
// whole TXID range and reaches furthest, or nil.
func covering(files []*ltx.FileInfo, f *ltx.FileInfo) *ltx.FileInfo {
	i, _ := slices.BinarySearchFunc(files, f.MinTXID, func(c *ltx.FileInfo, t ltx.TXID) int {
		if c.MinTXID <= t {
			return -1
		}
		return 1
	})
	// files[:i] start at or before f; the one that reaches furthest decides.
	var best *ltx.FileInfo
	for j := i - 1; j >= 0 && j >= i-MaxInputs; j-- { // ranges at one level do not nest deeper
		if files[j].MaxTXID >= f.MaxTXID && (best == nil || files[j].MaxTXID > best.MaxTXID) {
			best = files[j]
		}
	}
	return best
}

// L0Expired returns the level-0 files that may be deleted at now: those a
// level-1 file holds, once the newest of them was created at least
// L0Retention ago, unless a snapshot needs them: one whose TXID falls
// inside that level-1 file, before them (restoring from it reads the
// level-0 files after it up to the level-1 file's end; no level-1 file
// starts right after it). With compaction off nothing expires. The next time one
// expires is returned too (zero if none is pending). The files are in the
// order to delete them: cut short after any of them, what remains still
// restores every point a file ends at.
func L0Expired(cfg Config, lv *Levels, now time.Time) (expired []*ltx.FileInfo, next time.Time) {
	if len(cfg.Intervals) == 0 {
		return nil, time.Time{}
	}
	// The level-0 files one level-1 file holds expire together, when the
	// newest of them is l0-retention old: a restore to the end of any of
	// them reads all of them from the level-1 file's start (expired one
	// by one, the first ones went while later ones still listed points
	// that could no longer be restored).
	groups := map[*ltx.FileInfo][]*ltx.FileInfo{}
	var order []*ltx.FileInfo
	newestIn := map[*ltx.FileInfo]time.Time{}
	held := map[*ltx.FileInfo]bool{} // a snapshot's chain needs the group
	for _, f := range lv[0] {
		c := covering(lv[1], f)
		if c == nil {
			continue
		}
		if _, ok := groups[c]; !ok {
			order = append(order, c)
		}
		groups[c] = append(groups[c], f)
		newestIn[c] = later(newestIn[c], created(f, now))
		held[c] = held[c] || needed(lv[replica.SnapshotLevel], c, f)
	}
	for _, c := range order {
		if held[c] {
			continue
		}
		at := newestIn[c].Add(cfg.L0Retention)
		if !at.After(now) {
			// Newest first: a deletion cut short (a killed owner, a
			// failed request) leaves a prefix of the group, whose ends
			// a restore still reaches from the level-1 file before it.
			// Oldest first left ends behind a hole, listed but refused.
			g := groups[c]
			for i := len(g) - 1; i >= 0; i-- {
				expired = append(expired, g[i])
			}
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return expired, next
}

// needed reports whether a snapshot's chain runs through the level-0 file
// f covered by c: the snapshot ends inside c, before f.
func needed(snaps []*ltx.FileInfo, c, f *ltx.FileInfo) bool {
	for _, s := range snaps {
		if s.MaxTXID >= c.MinTXID && s.MaxTXID < f.MinTXID {
			return true
		}
	}
	return false
}
