package compact

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

func names(files []*ltx.FileInfo) string {
	var s []string
	for _, f := range files {
		s = append(s, fmt.Sprintf("%d:%d-%d", f.Level, f.MinTXID, f.MaxTXID))
	}
	return strings.Join(s, " ")
}

func TestRetentionExpired(t *testing.T) {
	cfg := Defaults()
	cfg.Retention = time.Hour
	runExpiry(t, []expiryCase{
		{"NoSnapshot", cfg, []string{"0:2-5@0s"}, "5h", "", ""},
		// One snapshot: it is the newest, never deleted; nothing precedes it.
		{"OneSnapshot", cfg, []string{"9:1-1@0s", "1:2-9@30s"}, "5h", "", ""},
		// The 2 h snapshot is the newest made before the window (now-1h =
		// 2h30m): the 0 h one and what ends before TXID 50 go.
		{"OldestBaseKept", cfg, []string{"9:1-1@0s", "1:2-49@1h", "9:1-50@2h", "1:51-60@2h1m", "2:2-49@1h", "0:51-51@2h2m", "9:1-90@3h"}, "3h30m", "9:1-1 1:2-49 2:2-49", "4h"},
		// A level-1 file straddles the base (50-60 continues 2-49, the
		// level-0 files inside it expired): deleting what precedes the
		// base would make TXID 60 unreachable; all stays until the next
		// snapshot is the base.
		{"StraddlerKeepsItsChain", cfg, []string{"9:1-1@0s", "1:2-49@1h", "9:1-50@2h", "1:50-60@2h1m", "2:2-49@1h", "0:51-51@2h2m", "9:1-90@3h"}, "3h30m", "", "4h"},
		// Every snapshot newer than the window: all are kept.
		{"AllInsideWindow", cfg, []string{"9:1-1@0s", "1:2-9@10m", "9:1-10@20m"}, "50m", "", "1h20m"},
		// A snapshot whose store clock runs ahead counts as made now.
		{"SkewAhead", cfg, []string{"9:1-1@0s", "9:1-10@10h"}, "2h", "", "3h"},
		{"Off", Config{Intervals: DefaultIntervals}, []string{"9:1-1@0s", "9:1-10@1h"}, "5h", "", ""},
		{"CompactionOff", Config{Retention: time.Hour}, []string{"9:1-1@0s", "9:1-10@1h"}, "5h", "", ""},
	}, RetentionExpired)
}

func TestSnapshotDue(t *testing.T) {
	cfg := Defaults()
	mk := func(level, n int, size int64) []*ltx.FileInfo {
		out := []*ltx.FileInfo{{Level: 9, MinTXID: 1, MaxTXID: 1, Size: 1000}}
		for i := 0; i < n; i++ {
			out = append(out, &ltx.FileInfo{Level: level, MinTXID: ltx.TXID(2 + i), MaxTXID: ltx.TXID(2 + i), Size: size})
		}
		return out
	}
	snapAt := func(off string) *Levels { return lv(t, "9:1-1@"+off) }
	for _, tc := range []struct {
		name    string
		cfg     Config
		lv      *Levels
		plan    []*ltx.FileInfo
		dbBytes int64
		now     string
		due     bool
		why     string
		next    string
	}{
		{"Unchanged", cfg, snapAt("0s"), mk(3, 0, 0), 1 << 20, "48h", false, "", ""},
		{"IntervalNotYet", cfg, snapAt("0s"), mk(3, 2, 10), 1 << 20, "1h", false, "", "24h"},
		{"IntervalPassed", cfg, snapAt("0s"), mk(3, 2, 10), 1 << 20, "24h", true, "snapshot-interval", ""},
		{"SixteenSettledFiles", cfg, snapAt("0s"), mk(3, 15, 10), 1 << 20, "1h", false, "", "24h"},
		{"SeventeenSettledFiles", cfg, snapAt("0s"), mk(3, 16, 10), 1 << 20, "1h", true, "snapshot-max-files", ""},
		// Lower levels are not settled: they are compacted further.
		{"LowerLevelsNotCounted", cfg, snapAt("0s"), mk(1, 40, 10), 1 << 20, "1h", false, "", "24h"},
		{"DeltaBytes", cfg, snapAt("0s"), mk(1, 4, 300), 1000, "1h", true, "snapshot-max-ratio", ""},
		{"DeltaBytesUnderRatio", cfg, snapAt("0s"), mk(1, 3, 300), 1000, "1h", false, "", "24h"},
		{"NoSnapshotYet", cfg, lv(t), mk(1, 3, 300), 1000, "48h", false, "", ""},
		{"CompactionOff", Config{SnapshotInterval: time.Hour}, snapAt("0s"), mk(1, 3, 300), 1000, "48h", false, "", ""},
		{"SkewAhead", cfg, snapAt("48h"), mk(3, 2, 10), 1 << 20, "1h", false, "", "25h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, why, next := SnapshotDue(tc.cfg, tc.lv, tc.plan, tc.dbBytes, at(t, tc.now))
			if due != tc.due || !strings.Contains(why, tc.why) {
				t.Errorf("due %v (%q), want %v (%q)", due, why, tc.due, tc.why)
			}
			if want := atOrZero(t, tc.next); !next.Equal(want) {
				t.Errorf("next %v, want %v", next, want)
			}
		})
	}
}

func TestLatestPlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"Empty", nil, ""},
		{"NoSnapshot", []string{"0:2-5@0s"}, ""},
		{"SnapshotOnly", []string{"9:1-5@0s"}, "9:1-5"},
		{"HighestLevels", []string{"9:1-1@0s", "0:2-2@0s", "0:3-3@0s", "1:2-3@0s", "2:2-9@0s", "1:4-9@0s", "1:10-12@0s", "0:13-13@0s"}, "9:1-1 2:2-9 1:10-12 0:13-13"},
		{"NewestSnapshot", []string{"9:1-1@0s", "1:2-9@0s", "9:1-9@0s", "0:10-10@0s"}, "9:1-9 0:10-10"},
		{"Gap", []string{"9:1-1@0s", "0:2-2@0s", "0:4-4@0s"}, ""},
		{"LatestIsTheSnapshot", []string{"9:1-1@0s", "1:2-9@0s", "9:1-9@0s"}, "9:1-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(LatestPlan(lv(t, tc.files...))); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLitestreamCompactedReplica: a replica laid out as Litestream 0.5
// leaves it (one level-0 file per second of sync, level-1 files per 30 s
// window, a snapshot read from the database at a TXID inside a level-1
// file) is continued correctly: compaction goes on from level 1's end,
// level-0 files expire by level-1 file except those a snapshot inside it
// needs (kept while that snapshot is), and the latest plan starts at the
// newest snapshot.
func TestLitestreamCompactedReplica(t *testing.T) {
	var items []string
	for txid := 1; txid <= 120; txid++ {
		items = append(items, fmt.Sprintf("0:%d-%d@%ds", txid, txid, txid))
	}
	items = append(items, "1:1-30@30s", "1:31-60@60s", "1:61-90@90s", "9:1-1@0s", "9:1-45@45s")
	l := lv(t, items...)
	cfg := Defaults()

	job, ok, _ := Next(cfg, l, at(t, "121s"))
	if !ok || job.Level != 1 || job.MinTXID() != 91 || job.MaxTXID() != 120 {
		t.Errorf("next compaction %v (ok %v), want level 1 from TXID 91 to 120", describe(job), ok)
	}
	exp, _ := L0Expired(cfg, l, at(t, "400s"))
	var want []string
	// 1-30 stay while the snapshot at TXID 1 does (its chain needs 2-30:
	// no level-1 file starts at 2), 31-60 while the one at 45 does.
	for txid := 90; txid >= 61; txid-- { // newest first
		want = append(want, fmt.Sprintf("0:%d-%d", txid, txid))
	}
	if got := names(exp); got != strings.Join(want, " ") {
		t.Errorf("expired %q,\nwant %q", got, strings.Join(want, " "))
	}
	// Once retention removed the older snapshots, their groups go too.
	cfg.Retention = time.Minute
	if exp, _ := RetentionExpired(cfg, l, at(t, "400s")); names(exp) == "" || !strings.HasPrefix(names(exp), "9:1-1") {
		t.Errorf("retention at 400 s expired %q, want the snapshot at 1 first", names(exp))
	}
	plan := LatestPlan(l)
	if len(plan) == 0 || plan[0].MaxTXID != 45 || plan[len(plan)-1].MaxTXID != 120 {
		t.Fatalf("latest plan %q, want the snapshot at 45 to TXID 120", names(plan))
	}
}
