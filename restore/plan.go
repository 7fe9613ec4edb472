package restore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// Plan returns the files to apply, in order, to restore the database as of
// target (0 = the latest TXID in the replica): the newest snapshot (MinTXID
// 1, any level) with MaxTXID ≤ target, then a contiguous chain (each
// MinTXID = previous MaxTXID+1) of files from any level ending exactly at
// target. At each step the chain prefers the file that reaches furthest
// without passing target, backing off when that leads to a dead end. If
// the newest snapshot cannot reach target, older snapshots are tried.
//
// Errors wrap ErrEmptyReplica, ErrNoSnapshot, ErrTargetNotFound or
// ErrTXIDGap and name the TXIDs and files involved. For the latest TXID, a
// gap that no snapshot bridges is an error: Plan never silently settles for
// an older state. The returned infos come from client.LTXFiles, so their
// checksums are zero; Restore checks checksums from the file headers.
func Plan(ctx context.Context, client replica.Client, target ltx.TXID) ([]*ltx.FileInfo, error) {
	files, err := ListFiles(ctx, client)
	if err != nil {
		return nil, err
	}
	return plan(client.String(), files, target)
}

// fileName returns the replica path of info, as error messages name it.
func fileName(info *ltx.FileInfo) string {
	return replica.LTXFilePath(info.Level, info.MinTXID, info.MaxTXID)
}

// plan picks the files from files for target; see Plan. name identifies
// the replica in errors.
func plan(name string, files []*ltx.FileInfo, target ltx.TXID) ([]*ltx.FileInfo, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrEmptyReplica)
	}

	var latest ltx.TXID
	var oldest *ltx.FileInfo // the oldest snapshot
	endsAt := make(map[ltx.TXID]bool)
	for _, f := range files {
		latest = max(latest, f.MaxTXID)
		endsAt[f.MaxTXID] = true
		if f.MinTXID == 1 && (oldest == nil || f.MaxTXID < oldest.MaxTXID) {
			oldest = f
		}
	}
	switch {
	case target == 0:
		target = latest
	case target > latest:
		return nil, fmt.Errorf("%w: txid %s (%d) is past the latest txid %s (%d) in %s",
			ErrTargetNotFound, target, target, latest, latest, name)
	case oldest != nil && target < oldest.MaxTXID:
		// Retention deleted what came before (or it never existed).
		return nil, fmt.Errorf("%w at or before txid %s (%d) in %s: the oldest restorable point is txid %s (%d), the oldest snapshot %s",
			ErrNoSnapshot, target, target, name, oldest.MaxTXID, oldest.MaxTXID, fileName(oldest))
	case !endsAt[target]:
		before, after := nearestEnds(files, target)
		return nil, fmt.Errorf("%w: no ltx file in %s ends at txid %s (%d): restorable points are the ends of files (compaction keeps every commit only for l0-retention); the nearest are txid %d and %d",
			ErrTargetNotFound, name, target, target, before, after)
	}

	// Snapshots newest first; for equal ranges prefer the higher level.
	var snapshots []*ltx.FileInfo
	var oldestSnapshot *ltx.FileInfo
	for _, f := range files {
		if f.MinTXID != 1 {
			continue
		}
		if oldestSnapshot == nil || f.MaxTXID < oldestSnapshot.MaxTXID {
			oldestSnapshot = f
		}
		if f.MaxTXID <= target {
			snapshots = append(snapshots, f)
		}
	}
	if len(snapshots) == 0 {
		if oldestSnapshot != nil {
			return nil, fmt.Errorf("%w at or before txid %s in %s: oldest snapshot is %s",
				ErrNoSnapshot, target, name, fileName(oldestSnapshot))
		}
		return nil, fmt.Errorf("%w in %s: %d ltx files, none starts at txid 1", ErrNoSnapshot, name, len(files))
	}
	slices.SortFunc(snapshots, preferFurthest)

	// Continuations by MinTXID, each list furthest first.
	next := make(map[ltx.TXID][]*ltx.FileInfo)
	for _, f := range files {
		if f.MinTXID > 1 && f.MaxTXID <= target {
			next[f.MinTXID] = append(next[f.MinTXID], f)
		}
	}
	for _, a := range next {
		slices.SortFunc(a, preferFurthest)
	}

	var firstErr error
	for _, snap := range snapshots {
		chain, reach := chainFrom(snap.MaxTXID, target, next)
		if chain != nil || snap.MaxTXID == target {
			return append([]*ltx.FileInfo{snap}, chain...), nil
		}
		if firstErr == nil {
			firstErr = gapError(name, files, reach, target)
		}
	}
	return nil, firstErr
}

// nearestEnds returns the file ends nearest to target, before and after it.
func nearestEnds(files []*ltx.FileInfo, target ltx.TXID) (before, after ltx.TXID) {
	for _, f := range files {
		if f.MaxTXID < target {
			before = max(before, f.MaxTXID)
		} else if f.MaxTXID > target && (after == 0 || f.MaxTXID < after) {
			after = f.MaxTXID
		}
	}
	return before, after
}

// preferFurthest orders files by MaxTXID descending, then level descending.
func preferFurthest(a, b *ltx.FileInfo) int {
	if v := cmp.Compare(b.MaxTXID, a.MaxTXID); v != 0 {
		return v
	}
	return cmp.Compare(b.Level, a.Level)
}

// chainFrom finds a contiguous chain of files from start+1 to target,
// trying at each position the file reaching furthest first and remembering
// dead ends, so it runs in time linear in the number of files. It returns
// the chain (nil if start == target or none exists) and the furthest TXID
// reached.
func chainFrom(start, target ltx.TXID, next map[ltx.TXID][]*ltx.FileInfo) ([]*ltx.FileInfo, ltx.TXID) {
	type frame struct {
		pos ltx.TXID
		i   int           // next candidate to try
		via *ltx.FileInfo // file that led here
	}
	dead := make(map[ltx.TXID]bool)
	stack := []frame{{pos: start}}
	reach := start
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.pos == target {
			if len(stack) == 1 {
				return nil, reach
			}
			chain := make([]*ltx.FileInfo, 0, len(stack)-1)
			for _, fr := range stack[1:] {
				chain = append(chain, fr.via)
			}
			return chain, reach
		}
		cands := next[top.pos+1]
		if top.i >= len(cands) {
			dead[top.pos] = true
			stack = stack[:len(stack)-1]
			continue
		}
		f := cands[top.i]
		top.i++
		if dead[f.MaxTXID] {
			continue
		}
		reach = max(reach, f.MaxTXID)
		stack = append(stack, frame{pos: f.MaxTXID, via: f})
	}
	return nil, reach
}

// gapError describes why no chain gets past reach: the file that starts
// next after reach+1, if any.
func gapError(name string, files []*ltx.FileInfo, reach, target ltx.TXID) error {
	var nextFile *ltx.FileInfo
	for _, f := range files {
		if f.MinTXID <= reach+1 || f.MinTXID == 1 {
			continue
		}
		if nextFile == nil || f.MinTXID < nextFile.MinTXID ||
			(f.MinTXID == nextFile.MinTXID && f.Level < nextFile.Level) {
			nextFile = f
		}
	}
	if nextFile == nil {
		return fmt.Errorf("%w after %s in %s: no file starts at %s (target %s)",
			ErrTXIDGap, reach, name, reach+1, target)
	}
	return fmt.Errorf("%w after %s: next file starts at %s (%s) in %s (target %s)",
		ErrTXIDGap, reach, nextFile.MinTXID, fileName(nextFile), name, target)
}
