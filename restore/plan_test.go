package restore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/superfly/ltx"
)

// f returns a FileInfo at level covering [minTXID, maxTXID].
func f(level int, minTXID, maxTXID ltx.TXID) *ltx.FileInfo {
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}
}

// l0 returns level-0 files for each TXID in [from, to].
func l0(from, to ltx.TXID) []*ltx.FileInfo {
	var a []*ltx.FileInfo
	for txid := from; txid <= to; txid++ {
		a = append(a, f(0, txid, txid))
	}
	return a
}

// join concatenates file lists.
func join(lists ...[]*ltx.FileInfo) []*ltx.FileInfo {
	var a []*ltx.FileInfo
	for _, l := range lists {
		a = append(a, l...)
	}
	return a
}

// describe formats a plan as "level:min-max ...".
func describe(files []*ltx.FileInfo) string {
	s := make([]string, len(files))
	for i, info := range files {
		s[i] = fmt.Sprintf("%d:%d-%d", info.Level, info.MinTXID, info.MaxTXID)
	}
	return strings.Join(s, " ")
}

func TestPlanChains(t *testing.T) {
	tests := []struct {
		name   string
		files  []*ltx.FileInfo
		target ltx.TXID
		want   string
	}{
		{"L0Only", l0(1, 4), 0, "0:1-1 0:2-2 0:3-3 0:4-4"},
		{"SnapshotOnly", []*ltx.FileInfo{f(9, 1, 7)}, 0, "9:1-7"},
		{"SnapshotThenL0", join([]*ltx.FileInfo{f(9, 1, 3)}, l0(4, 6)), 0, "9:1-3 0:4-4 0:5-5 0:6-6"},
		{"NewestSnapshot", join(l0(1, 8), []*ltx.FileInfo{f(9, 1, 3), f(9, 1, 6)}), 0, "9:1-6 0:7-7 0:8-8"},
		{"SnapshotAtLatest", join(l0(1, 8), []*ltx.FileInfo{f(9, 1, 8)}), 0, "9:1-8"},
		{"TargetBeforeNewestSnapshot", join(l0(1, 8), []*ltx.FileInfo{f(9, 1, 3), f(9, 1, 6)}), 5, "9:1-3 0:4-4 0:5-5"},
		{"TargetIsSnapshot", join(l0(1, 8), []*ltx.FileInfo{f(9, 1, 6)}), 6, "9:1-6"},
		{"SnapshotBridgesGap", join(l0(1, 3), l0(6, 8), []*ltx.FileInfo{f(9, 1, 5)}), 0, "9:1-5 0:6-6 0:7-7 0:8-8"},
		{"TargetBeforeGap", join(l0(1, 3), l0(6, 8)), 3, "0:1-1 0:2-2 0:3-3"},
		{"PreferCompaction", join(l0(1, 6), []*ltx.FileInfo{f(1, 2, 5)}), 0, "0:1-1 1:2-5 0:6-6"},
		{"PreferHigherLevelForSameRange", join(l0(1, 3), []*ltx.FileInfo{f(9, 1, 1), f(1, 2, 3), f(2, 2, 3)}), 0, "9:1-1 2:2-3"},
		{"CompactionPassesTarget", join(l0(1, 6), []*ltx.FileInfo{f(1, 2, 6)}), 4, "0:1-1 0:2-2 0:3-3 0:4-4"},
		{"CompactionBridgesL0Gap", join(l0(1, 2), l0(6, 7), []*ltx.FileInfo{f(1, 3, 5)}), 0, "0:1-1 0:2-2 1:3-5 0:6-6 0:7-7"},
		{"Backtrack", []*ltx.FileInfo{f(0, 1, 1), f(1, 2, 4), f(0, 2, 2), f(1, 3, 6)}, 6, "0:1-1 0:2-2 1:3-6"},
		{"OlderSnapshotWhenNewestDeadEnds", []*ltx.FileInfo{f(9, 1, 2), f(9, 1, 4), f(1, 3, 6)}, 6, "9:1-2 1:3-6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan("test", tt.files, tt.target)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if got, want := describe(got), tt.want; got != want {
				t.Fatalf("plan = %s, want %s", got, want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name   string
		files  []*ltx.FileInfo
		target ltx.TXID
		want   error
		msg    string
	}{
		{"Empty", nil, 0, ErrEmptyReplica, "test: replica has no ltx files"},
		{"NoSnapshot", l0(2, 4), 0, ErrNoSnapshot, "no snapshot in test: 3 ltx files, none starts at txid 1"},
		{"SnapshotAfterTarget", join(l0(3, 8), []*ltx.FileInfo{f(9, 1, 5)}), 4, ErrNoSnapshot,
			"no snapshot at or before txid 0000000000000004 (4) in test: the oldest restorable point is txid 0000000000000005 (5), the oldest snapshot ltx/9/0000000000000001-0000000000000005.ltx"},
		{"TargetPastLatest", l0(1, 3), 4, ErrTargetNotFound, "txid 0000000000000004 (4) is past the latest txid 0000000000000003 (3)"},
		{"TargetInsideCompaction", []*ltx.FileInfo{f(0, 1, 1), f(1, 2, 5)}, 3, ErrTargetNotFound, "no ltx file in test ends at txid 0000000000000003"},
		{"GapLatest", join(l0(1, 5), l0(7, 9)), 0, ErrTXIDGap,
			"txid gap after 0000000000000005: next file starts at 0000000000000007 (ltx/0/0000000000000007-0000000000000007.ltx)"},
		{"GapLatestAfterNewestSnapshot", join(l0(1, 5), l0(7, 9), []*ltx.FileInfo{f(9, 1, 4)}), 0, ErrTXIDGap,
			"txid gap after 0000000000000005: next file starts at 0000000000000007"},
		{"GapExplicitTarget", join(l0(1, 5), l0(7, 9)), 8, ErrTXIDGap, "txid gap after 0000000000000005"},
		{"GapNoNextFile", []*ltx.FileInfo{f(0, 1, 1), f(1, 3, 4), f(0, 4, 4)}, 4, ErrTXIDGap,
			"txid gap after 0000000000000001: next file starts at 0000000000000003 (ltx/1/0000000000000003-0000000000000004.ltx)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan("test", tt.files, tt.target)
			if !errors.Is(err, tt.want) {
				t.Fatalf("plan = %s, %v; want error %v", describe(got), err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("plan error %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

// TestPlanLongChain checks that dead ends are not re-explored: a chain of
// many files with a dead-end compaction at every step stays linear.
func TestPlanLongChain(t *testing.T) {
	const n = 100000
	files := l0(1, n)
	for txid := ltx.TXID(2); txid+2 <= n; txid += 2 {
		files = append(files, f(1, txid, txid+1)) // leads to txid+2: fine
		files = append(files, f(2, txid, txid+2)) // next file starts at txid+3: odd, never followed by a level-2 file
	}
	got, err := plan("test", files, 0)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if got[len(got)-1].MaxTXID != n {
		t.Fatalf("plan ends at %d, want %d", got[len(got)-1].MaxTXID, n)
	}
}

// TestReachable: the restorable points are the file ends a chain from a
// snapshot reaches, exactly the targets Plan accepts; the rest after the
// oldest snapshot are reported as unreachable runs.
func TestReachable(t *testing.T) {
	tests := []struct {
		name        string
		files       []*ltx.FileInfo
		ends        string // restorable ends
		unreachable []string
	}{
		{name: "Whole", files: join([]*ltx.FileInfo{f(9, 1, 10)}, l0(11, 13)), ends: "10 11 12 13"},
		{
			name:  "LevelOneGone", // its level-0 files expired, then it went
			files: join([]*ltx.FileInfo{f(9, 1, 10)}, l0(21, 25)), ends: "10",
			unreachable: []string{"txids 0000000000000015-0000000000000019 (21-25): no chain from a snapshot reaches them (it stops at 000000000000000a)"},
		},
		{
			name:  "HoleHealedBySnapshot",
			files: join([]*ltx.FileInfo{f(9, 1, 10), f(9, 1, 15)}, l0(11, 12), l0(14, 16)), ends: "10 11 12 15 16",
			unreachable: []string{"txids 000000000000000e-000000000000000e (14-14): no chain from a snapshot reaches them (it stops at 000000000000000c)"},
		},
		{
			name:  "BeforeOldestSnapshotIgnored",
			files: join(l0(2, 4), []*ltx.FileInfo{f(9, 1, 5)}, l0(6, 6)), ends: "5 6",
		},
		{name: "NoSnapshot", files: l0(2, 4), ends: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ends []string
			for _, e := range restorable(tt.files) {
				ends = append(ends, fmt.Sprint(uint64(e.MaxTXID)))
			}
			if got := strings.Join(ends, " "); got != tt.ends {
				t.Errorf("restorable ends %q, want %q", got, tt.ends)
			}
			if got := Unreachable(tt.files); fmt.Sprint(got) != fmt.Sprint(tt.unreachable) {
				t.Errorf("Unreachable\n got %q\nwant %q", got, tt.unreachable)
			}
			reach := Reachable(tt.files)
			for _, fi := range tt.files {
				_, err := plan("test", tt.files, fi.MaxTXID)
				if oldest := restorable(tt.files); len(oldest) > 0 && fi.MaxTXID < oldest[0].MaxTXID {
					continue // before the oldest snapshot: refused for that
				}
				if (err == nil) != reach[fi.MaxTXID] {
					t.Errorf("Plan(%d): %v, but reachable %v", fi.MaxTXID, err, reach[fi.MaxTXID])
				}
			}
		})
	}
}
