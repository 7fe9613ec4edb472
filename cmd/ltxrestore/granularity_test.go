package main

import (
	"fmt"
	"testing"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/restore"
)

// gran is granularity with the reachable ends of files.
func gran(files []lsFile, r *lsRestorable) []lsSpan {
	infos := make([]*ltx.FileInfo, len(files))
	for i, f := range files {
		infos[i] = &ltx.FileInfo{Level: f.Level, MinTXID: ltx.TXID(f.MinTXID), MaxTXID: ltx.TXID(f.MaxTXID)}
	}
	return granularity(files, r, restore.Reachable(infos))
}

func TestGranularity(t *testing.T) {
	f := func(level int, lo, hi uint64, ts string) lsFile {
		return lsFile{Level: level, MinTXID: lo, MaxTXID: hi, Timestamp: ts}
	}
	files := []lsFile{
		f(9, 1, 1, "t01"), f(9, 1, 40, "t40"),
		f(3, 2, 30, "t30"), f(2, 31, 36, "t36"),
		f(1, 2, 10, "t10"), f(1, 11, 20, "t20"), f(1, 21, 30, "t30"), f(1, 31, 33, "t33"), f(1, 34, 36, "t36"),
		f(0, 35, 35, "t35"), f(0, 36, 36, "t36"), f(0, 37, 37, "t37"),
	}
	got := fmt.Sprint(gran(files, &lsRestorable{FirstTXID: 1, LastTXID: 37}))
	// 35 ends a level-0 file but is no point: nothing ends at 34.
	// Each span's first and last TXIDs are points of its level, with
	// those files' times (found by an attack: the level-1 span began at
	// the snapshot's end with the time of the file ending at 10).
	want := "[{0 2 36 37 t36 t37} {1 4 10 33 t10 t33}]"
	if got != want {
		t.Errorf("granularity %s, want %s", got, want)
	}
	// A level-0 file that starts inside a level-1 file: the level-1 span
	// ends at that level-1 file's predecessor's end, a real point.
	got = fmt.Sprint(gran([]lsFile{f(9, 1, 1, "a"), f(1, 2, 10, "b"), f(1, 11, 20, "c"), f(0, 14, 20, "d")}, &lsRestorable{FirstTXID: 1, LastTXID: 20}))
	if want := "[{0 1 20 20 d d} {1 1 10 10 b b}]"; got != want {
		t.Errorf("granularity %s, want %s", got, want)
	}
	if g := gran(files, nil); g != nil {
		t.Errorf("granularity of nothing restorable: %v", g)
	}
	// Level-0 files behind a hole (their level-1 file is gone): no span
	// counts their ends; the snapshot's end is the only point.
	got = fmt.Sprint(gran([]lsFile{f(9, 1, 10, "a"), f(0, 16, 16, "b"), f(0, 17, 17, "c")}, &lsRestorable{FirstTXID: 10, LastTXID: 10}))
	if want := "[]"; got != want {
		t.Errorf("granularity behind a hole %s, want %s", got, want)
	}
	// Only level-0 files: one span, every file end.
	got = fmt.Sprint(gran([]lsFile{f(9, 1, 1, "a"), f(0, 2, 2, "b"), f(0, 3, 4, "c")}, &lsRestorable{FirstTXID: 1, LastTXID: 4}))
	if want := "[{0 2 2 4 b c}]"; got != want {
		t.Errorf("granularity %s, want %s", got, want)
	}
}
