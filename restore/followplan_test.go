package restore

import (
	"fmt"
	"testing"

	"github.com/superfly/ltx"
)

func TestFollowChain(t *testing.T) {
	big := func(fi *ltx.FileInfo, size int64) *ltx.FileInfo { fi.Size = size; return fi }
	tests := []struct {
		files []*ltx.FileInfo
		from  ltx.TXID
		want  string
		reach ltx.TXID
	}{
		{l0(1, 5), 2, "0:3-3 0:4-4 0:5-5", 5},
		{l0(1, 5), 5, "", 5},
		{join(l0(1, 3), []*ltx.FileInfo{f(1, 1, 5)}, l0(6, 7)), 3, "1:1-5 0:6-6 0:7-7", 7},
		{join([]*ltx.FileInfo{f(0, 4, 6), f(1, 4, 8)}, l0(9, 9)), 3, "1:4-8 0:9-9", 9},
		// In the middle: the smallest file that holds the next TXID.
		{[]*ltx.FileInfo{big(f(9, 1, 10), 1000), big(f(1, 1, 8), 100), big(f(0, 9, 10), 10)}, 4, "1:1-8 0:9-10", 10},
		{[]*ltx.FileInfo{big(f(9, 1, 10), 1000), big(f(1, 1, 8), 100)}, 8, "9:1-10", 10},
		// A gap nothing bridges: as far as the chain goes.
		{join(l0(1, 3), l0(6, 7)), 2, "0:3-3", 3},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			chain, reach := followChain(tt.files, tt.from)
			if got := describe(chain); got != tt.want || reach != tt.reach {
				t.Errorf("followChain(%s, %d) = %q to %d, want %q to %d", describe(tt.files), tt.from, got, reach, tt.want, tt.reach)
			}
		})
	}
}
