package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// ListFiles returns every LTX file in the replica with a usable TXID range,
// all levels, with Level set, ordered by level, then MinTXID, then MaxTXID.
// An empty or missing replica returns no files and no error.
func ListFiles(ctx context.Context, client replica.Client) ([]*ltx.FileInfo, error) {
	var files []*ltx.FileInfo
	for level := 0; level <= replica.MaxLevel; level++ {
		infos, err := client.LTXFiles(ctx, level)
		if err != nil {
			return nil, fmt.Errorf("list level %d of %s: %w", level, client, err)
		}
		for _, info := range infos {
			if info.MinTXID == 0 || info.MinTXID > info.MaxTXID {
				continue // not a usable range; never written by us
			}
			c := *info
			c.Level = level
			files = append(files, &c)
		}
	}
	return files, nil
}

// ReadHeader reads only the header of the file info (its first
// ltx.HeaderSize bytes) and closes it; the rest is not downloaded. Errors
// wrap ErrInvalidFile for a header that cannot be decoded or does not match
// the file's name.
func ReadHeader(ctx context.Context, client replica.Client, info *ltx.FileInfo) (ltx.Header, error) {
	name := fileName(info)
	rc, err := client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID)
	if err != nil {
		return ltx.Header{}, fmt.Errorf("open %s: %w", name, err)
	}
	defer func() { _ = rc.Close() }()
	b := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(rc, b); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ltx.Header{}, fmt.Errorf("%w: %s: read header: %w", ErrInvalidFile, name, io.ErrUnexpectedEOF)
	} else if err != nil {
		return ltx.Header{}, fmt.Errorf("read header of %s: %w", name, err)
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(b); err != nil {
		return ltx.Header{}, fmt.Errorf("%w: %s: decode header: %w", ErrInvalidFile, name, err)
	}
	if err := hdr.Validate(); err != nil {
		return ltx.Header{}, fmt.Errorf("%w: %s: decode header: %w", ErrInvalidFile, name, err)
	}
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID {
		return ltx.Header{}, fmt.Errorf("%w: %s: header covers txids %s-%s", ErrInvalidFile, name, hdr.MinTXID, hdr.MaxTXID)
	}
	return hdr, nil
}

// Point is a restorable state: a TXID and the commit time of that
// transaction.
type Point struct {
	// TXID is the transaction.
	TXID ltx.TXID
	// Time is the Timestamp in the header of File (millisecond precision).
	Time time.Time
	// File is the replica path of the file whose header gave Time.
	File string
}

// restorable returns the TXIDs a restore can reach, ascending: those that
// end a file a chain from a snapshot reaches (a snapshot's end, or the end
// of a file that starts right after a reachable TXID). For each it returns
// the file ending there at the lowest level, whose header carries the
// commit time (a level-0 file records the transaction itself; compacted
// files and snapshots are written later). Ends behind a gap are left out
// (see Unreachable): Plan would refuse them.
func restorable(files []*ltx.FileInfo) []*ltx.FileInfo {
	reach := Reachable(files)
	byTXID := make(map[ltx.TXID]*ltx.FileInfo)
	for _, f := range files {
		if !reach[f.MaxTXID] {
			continue
		}
		if g := byTXID[f.MaxTXID]; g == nil || f.Level < g.Level {
			byTXID[f.MaxTXID] = f
		}
	}
	ends := make([]*ltx.FileInfo, 0, len(byTXID))
	for _, f := range byTXID {
		ends = append(ends, f)
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i].MaxTXID < ends[j].MaxTXID })
	return ends
}

// Reachable returns the set of TXIDs a chain of files from a snapshot
// reaches: every snapshot's end, and the end of every file that starts
// right after a reachable TXID. A file's start precedes its end, so files
// taken by ascending end see every TXID they continue from settled.
func Reachable(files []*ltx.FileInfo) map[ltx.TXID]bool {
	byEnd := slices.Clone(files)
	slices.SortFunc(byEnd, func(a, b *ltx.FileInfo) int { return cmp.Compare(a.MaxTXID, b.MaxTXID) })
	reach := make(map[ltx.TXID]bool)
	for _, f := range byEnd {
		if f.MinTXID == 1 || reach[f.MinTXID-1] {
			reach[f.MaxTXID] = true
		}
	}
	return reach
}

// Unreachable describes the runs of file ends after the oldest snapshot of
// files (as ListFiles returns them) that no chain from a snapshot reaches:
// a hole in the replica, points in time a file ends at but a restore
// refuses. Each run reads "txids A-B (a-b): ... (it stops at R)".
func Unreachable(files []*ltx.FileInfo) []string {
	reach := Reachable(files)
	var oldest ltx.TXID
	ends := make([]ltx.TXID, 0, len(files))
	for _, f := range files {
		if f.MinTXID == 1 && (oldest == 0 || f.MaxTXID < oldest) {
			oldest = f.MaxTXID
		}
		ends = append(ends, f.MaxTXID)
	}
	if oldest == 0 {
		return nil
	}
	slices.Sort(ends)
	ends = slices.Compact(ends)
	var runs []string
	var from, to, last ltx.TXID // the open run, and the last reachable end before it
	flush := func() {
		if from != 0 {
			runs = append(runs, fmt.Sprintf("txids %s-%s (%d-%d): no chain from a snapshot reaches them (it stops at %s)", from, to, from, to, last))
		}
		from = 0
	}
	for _, e := range ends {
		switch {
		case e < oldest:
		case reach[e]:
			flush()
			last = e
		case from == 0:
			from, to = e, e
		default:
			to = e
		}
	}
	flush()
	return runs
}

// point reads the commit time of the TXID that f ends.
func point(ctx context.Context, client replica.Client, f *ltx.FileInfo) (Point, error) {
	hdr, err := ReadHeader(ctx, client, f)
	if err != nil {
		return Point{}, err
	}
	return Point{TXID: f.MaxTXID, Time: time.UnixMilli(hdr.Timestamp).UTC(), File: fileName(f)}, nil
}

// RestorableRange returns the first and last restorable states of the
// replica: TXIDs that end a file and are not older than the oldest
// snapshot. It reads two file headers. Errors wrap ErrEmptyReplica or
// ErrNoSnapshot. A TXID in the range may still be unreachable because of
// a gap; Plan reports that.
func RestorableRange(ctx context.Context, client replica.Client) (first, last Point, err error) {
	files, err := ListFiles(ctx, client)
	if err != nil {
		return Point{}, Point{}, err
	}
	return restorableRange(ctx, client, files)
}

func restorableRange(ctx context.Context, client replica.Client, files []*ltx.FileInfo) (first, last Point, err error) {
	ends, err := restorableEnds(client, files)
	if err != nil {
		return Point{}, Point{}, err
	}
	if first, err = point(ctx, client, ends[0]); err != nil {
		return Point{}, Point{}, err
	}
	if last, err = point(ctx, client, ends[len(ends)-1]); err != nil {
		return Point{}, Point{}, err
	}
	return first, last, nil
}

// restorableEnds is restorable, with errors for a replica that has none.
func restorableEnds(client replica.Client, files []*ltx.FileInfo) ([]*ltx.FileInfo, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", client, ErrEmptyReplica)
	}
	ends := restorable(files)
	if len(ends) == 0 {
		return nil, fmt.Errorf("%w in %s: %d ltx files, none starts at txid 1", ErrNoSnapshot, client, len(files))
	}
	return ends, nil
}

// TXIDAt returns the last restorable state committed at or before t. It
// binary-searches the restorable TXIDs by their header timestamps, so it
// reads O(log n) file headers; commit times are taken to be non-decreasing
// in TXID, as the replicator stamps them. If t is before the first
// restorable state, the error wraps ErrBeforeFirst and names that state.
func TXIDAt(ctx context.Context, client replica.Client, t time.Time) (Point, error) {
	files, err := ListFiles(ctx, client)
	if err != nil {
		return Point{}, err
	}
	ends, err := restorableEnds(client, files)
	if err != nil {
		return Point{}, err
	}
	// Invariant: ends[:lo] are at or before t, ends[hi:] after it.
	lo, hi := 0, len(ends)
	var best Point
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		p, err := point(ctx, client, ends[mid])
		if err != nil {
			return Point{}, err
		}
		if p.Time.After(t) {
			hi = mid
		} else {
			lo, best = mid+1, p
		}
	}
	if lo == 0 {
		first, err := point(ctx, client, ends[0])
		if err != nil {
			return Point{}, err
		}
		return Point{}, fmt.Errorf("%w: %s is before the first restorable state in %s, txid %s (%d) at %s",
			ErrBeforeFirst, t.Format(time.RFC3339Nano), client, first.TXID, first.TXID, first.Time.Format(time.RFC3339Nano))
	}
	return best, nil
}
