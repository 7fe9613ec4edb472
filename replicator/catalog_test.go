package replicator

import (
	"slices"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// TestCatalogTotals: the catalog keeps its file count and bytes as it
// goes (status reads them at every publish) and appends a level's newest
// file without re-sorting; after any sequence of changes they equal what
// a full count of its levels gives, and each level stays sorted.
func TestCatalogTotals(t *testing.T) {
	fi := func(level int, lo, hi ltx.TXID, size int64) *ltx.FileInfo {
		return &ltx.FileInfo{Level: level, MinTXID: lo, MaxTXID: hi, Size: size}
	}
	var lv compact.Levels
	lv[9] = []*ltx.FileInfo{fi(9, 1, 10, 1000)}
	lv[0] = []*ltx.FileInfo{fi(0, 11, 11, 10), fi(0, 12, 12, 20)}
	steps := []struct {
		name string
		do   func(c *catalog)
	}{
		{"append", func(c *catalog) { c.add(fi(0, 13, 13, 30)) }},
		{"rewrite", func(c *catalog) { c.add(fi(0, 12, 12, 25)) }},
		{"out of order", func(c *catalog) { c.add(fi(1, 11, 12, 40)); c.add(fi(1, 2, 10, 50)) }},
		{"snapshot", func(c *catalog) { c.add(fi(9, 1, 12, 1100)) }},
		{"remove several levels", func(c *catalog) { c.remove([]*ltx.FileInfo{fi(0, 11, 11, 0), fi(0, 13, 13, 0), fi(9, 1, 10, 0)}) }},
		{"remove missing", func(c *catalog) { c.remove([]*ltx.FileInfo{fi(2, 1, 5, 0)}) }},
		{"set again", func(c *catalog) { c.set(lv, time.Now()) }},
	}
	var c catalog
	c.set(lv, time.Now())
	for _, st := range steps {
		st.do(&c)
		got, _ := c.levels()
		files, bytes := 0, int64(0)
		for level, fs := range got {
			files += len(fs)
			for _, f := range fs {
				bytes += f.Size
			}
			sorted := slices.Clone(fs)
			replica.SortFileInfos(sorted)
			if !slices.Equal(sorted, fs) {
				t.Errorf("%s: level %d not sorted", st.name, level)
			}
		}
		if f, b, _ := c.totals(); f != files || b != bytes {
			t.Errorf("%s: totals %d files %d bytes, the levels hold %d files %d bytes", st.name, f, b, files, bytes)
		}
	}
	if n, ok := c.newest(9); !ok || n.MaxTXID != 10 {
		t.Errorf("newest snapshot after set again = %v, %v; want the one ending at 10", n, ok)
	}
}
