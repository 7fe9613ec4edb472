package restore

import (
	"cmp"
	"slices"

	"github.com/superfly/ltx"
)

// followChain returns the files that take a database at TXID from to the
// latest TXID of files, in order, and the TXID they reach. At each
// position p it takes the file starting at p+1 that reaches furthest; if
// none starts there, the smallest file that contains p+1 (a compacted file
// or snapshot of which p is in the middle: applied to any state from its
// MinTXID-1 to its MaxTXID, its pages, the last version of each, give the
// state at its MaxTXID). It stops where no file contains the next TXID.
func followChain(files []*ltx.FileInfo, from ltx.TXID) ([]*ltx.FileInfo, ltx.TXID) {
	var latest ltx.TXID
	starts := map[ltx.TXID][]*ltx.FileInfo{}
	for _, f := range files {
		latest = max(latest, f.MaxTXID)
		starts[f.MinTXID] = append(starts[f.MinTXID], f)
	}
	for _, s := range starts {
		slices.SortFunc(s, preferFurthest)
	}
	var chain []*ltx.FileInfo
	pos := from
	for pos < latest {
		var next *ltx.FileInfo
		if s := starts[pos+1]; len(s) > 0 {
			next = s[0]
		} else {
			for _, f := range files {
				if f.MinTXID <= pos+1 && pos+1 <= f.MaxTXID && (next == nil || smaller(f, next) < 0) {
					next = f
				}
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next)
		pos = next.MaxTXID
	}
	return chain, pos
}

// smaller orders files by size, then the furthest first.
func smaller(a, b *ltx.FileInfo) int {
	if v := cmp.Compare(a.Size, b.Size); v != 0 {
		return v
	}
	return preferFurthest(a, b)
}
