package compact

import (
	"cmp"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/restore"
)

// Defaults of the retention and snapshot settings.
const (
	// DefaultRetention is how far back point-in-time restore reaches
	// (Litestream's default).
	DefaultRetention = 24 * time.Hour
	// DefaultSnapshotInterval is the longest time between snapshots while
	// the database changes (Litestream's default).
	DefaultSnapshotInterval = 24 * time.Hour
	// DefaultSnapshotMaxFiles bounds the settled files a latest restore
	// reads: the snapshot and the files of the highest level.
	DefaultSnapshotMaxFiles = 16
	// DefaultSnapshotMaxRatio bounds the bytes a latest restore reads
	// after the snapshot, as a multiple of the database's size.
	DefaultSnapshotMaxRatio = 1.0
)

// base returns the snapshot retention keeps as the oldest base at now:
// the newest one made at or before now−Retention (a restore to any point
// inside the window starts at it or a newer one), else the oldest one.
// ok is false if there is no snapshot.
func base(cfg Config, snaps []*ltx.FileInfo, now time.Time) (i int, ok bool) {
	if len(snaps) == 0 {
		return 0, false
	}
	cutoff := now.Add(-cfg.Retention)
	for j, s := range snaps {
		if !created(s, now).After(cutoff) {
			i = j
		}
	}
	return i, true
}

// RetentionExpired returns the files retention deletes at now: the
// snapshots older than the oldest base a restore inside the window can
// need (see base), and the files of every other level whose range ends at
// or before that base (no restore inside the window reads them). The
// newest snapshot is never deleted. It also returns when the next file
// expires (zero: none pending). Snapshots must be ordered by MaxTXID, as
// replica listings are. The files are in the order to delete them, the
// snapshots first, oldest first: cut short after any of them, what remains
// still restores every point a file ends at past its oldest snapshot.
func RetentionExpired(cfg Config, lv *Levels, now time.Time) (expired []*ltx.FileInfo, next time.Time) {
	if cfg.Retention <= 0 || len(cfg.Intervals) == 0 {
		return nil, time.Time{}
	}
	snaps := lv[replica.SnapshotLevel]
	i, ok := base(cfg, snaps, now)
	if !ok {
		return nil, time.Time{}
	}
	expired = append(expired, snaps[:i]...)
	for level := 0; level < replica.SnapshotLevel; level++ {
		for _, f := range lv[level] {
			if f.MaxTXID <= snaps[i].MaxTXID {
				expired = append(expired, f)
			}
		}
	}
	if i+1 < len(snaps) {
		// The next snapshot becomes the base, and what precedes it
		// expires, once it is older than the window.
		next = created(snaps[i+1], now).Add(cfg.Retention)
	}
	if len(expired) > 0 && loses(lv, expired, snaps[i].MaxTXID) {
		// A file that straddles the base continues a chain from an older
		// snapshot, and nothing after the base replaces it (the level-0
		// files inside it expired: a replica compacted elsewhere). It
		// all stays until a newer snapshot is the base.
		return nil, next
	}
	return expired, next
}

// loses reports whether deleting expired makes a point past base that a
// restore reaches now unreachable.
func loses(lv *Levels, expired []*ltx.FileInfo, base ltx.TXID) bool {
	var all []*ltx.FileInfo
	for _, files := range lv {
		all = append(all, files...)
	}
	gone := make(map[*ltx.FileInfo]bool, len(expired))
	for _, f := range expired {
		gone[f] = true
	}
	before := restore.Reachable(all)
	after := restore.Reachable(slices.DeleteFunc(all, func(f *ltx.FileInfo) bool { return gone[f] }))
	for txid := range before {
		if txid > base && !after[txid] {
			return true
		}
	}
	return false
}

// Oldest returns the oldest point a restore can reach at now once
// retention has run: the base snapshot's TXID (zero if none).
func Oldest(cfg Config, lv *Levels, now time.Time) ltx.TXID {
	snaps := lv[replica.SnapshotLevel]
	i, ok := base(cfg, snaps, now)
	if !ok {
		return 0
	}
	return snaps[i].MaxTXID
}

// SnapshotDue reports whether the owner should build a new snapshot now
// (from the replica's own files: the newest snapshot and the files of the
// latest restore's plan), and why; otherwise it returns when one falls due
// by time (zero: none pending, as while the database does not change).
//
// plan is the settled part of the latest restore's plan (SettledPlan: the
// newest snapshot first) and dbBytes the database's size. A snapshot is due when the database
// changed since the newest snapshot and
//   - SnapshotInterval has passed since that snapshot, or
//   - the settled part of the plan, the snapshot and the files of the
//     highest compaction level, is more than SnapshotMaxFiles files (the
//     lower levels are bounded by the ratios of the intervals), or
//   - the plan's files after the snapshot hold more than SnapshotMaxRatio
//     times dbBytes.
func SnapshotDue(cfg Config, lv *Levels, plan []*ltx.FileInfo, dbBytes int64, now time.Time) (due bool, why string, next time.Time) {
	snaps := lv[replica.SnapshotLevel]
	if len(snaps) == 0 || len(plan) == 0 || len(cfg.Intervals) == 0 {
		return false, "", time.Time{}
	}
	newest := snaps[len(snaps)-1]
	if plan[len(plan)-1].MaxTXID <= newest.MaxTXID {
		return false, "", time.Time{} // nothing changed since
	}
	top := min(len(cfg.Intervals), MaxLevels)
	settled, delta := 1, int64(0)
	for _, f := range plan[1:] {
		if f.Level == top {
			settled++
		}
		delta += f.Size
	}
	switch {
	case cfg.SnapshotMaxFiles > 0 && settled > cfg.SnapshotMaxFiles:
		return true, "the latest restore would read more files than snapshot-max-files", time.Time{}
	case cfg.SnapshotMaxRatio > 0 && dbBytes > 0 && float64(delta) > cfg.SnapshotMaxRatio*float64(dbBytes):
		return true, "the latest restore would read more bytes than snapshot-max-ratio times the database", time.Time{}
	case cfg.SnapshotInterval > 0:
		at := created(newest, now).Add(cfg.SnapshotInterval)
		if !at.After(now) {
			return true, "snapshot-interval passed", time.Time{}
		}
		return false, "", at
	}
	return false, "", time.Time{}
}

// LatestPlan returns the files a restore of the latest TXID reads, as the
// restore planner would pick them on an unbroken replica: the newest
// snapshot, then at each TXID the file that starts there and reaches
// furthest (the highest level on a tie), to the latest TXID of any level.
// It is nil if there is no snapshot or the files after it have a gap (the
// full planner, restore.Plan, searches harder; this runs after every
// upload, in microseconds).
func LatestPlan(lv *Levels) []*ltx.FileInfo {
	snaps := lv[replica.SnapshotLevel]
	if len(snaps) == 0 {
		return nil
	}
	var latest ltx.TXID
	for _, files := range lv {
		latest = max(latest, maxTXID(files))
	}
	plan := []*ltx.FileInfo{snaps[len(snaps)-1]}
	for pos := plan[0].MaxTXID; pos < latest; {
		var best *ltx.FileInfo
		for level := replica.SnapshotLevel - 1; level >= 0; level-- {
			files := lv[level]
			i, found := slices.BinarySearchFunc(files, pos+1, func(f *ltx.FileInfo, t ltx.TXID) int { return cmp.Compare(f.MinTXID, t) })
			if !found {
				continue
			}
			// Several files may start at pos+1: the furthest.
			for ; i < len(files) && files[i].MinTXID == pos+1; i++ {
				if best == nil || files[i].MaxTXID > best.MaxTXID {
					best = files[i]
				}
			}
		}
		if best == nil {
			return nil
		}
		plan = append(plan, best)
		pos = best.MaxTXID
	}
	return plan
}

// SettledPlan is LatestPlan without the level-0 files at its end: it ends
// where a compacted file ends. A snapshot built from it has TXID at a
// level-1 boundary, so a level-1 file starts right after it and its chain
// survives the expiry of level-0 files (one built at a level-0 TXID lost
// its chain once the level-0 files after it expired: level 1 had merged
// them with the ones before).
func SettledPlan(lv *Levels) []*ltx.FileInfo {
	plan := LatestPlan(lv)
	for len(plan) > 1 && plan[len(plan)-1].Level == 0 {
		plan = plan[:len(plan)-1]
	}
	return plan
}
