package compact

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/restore"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// at is t0 plus an offset ("90s", "-1h").
func at(tb testing.TB, off string) time.Time {
	tb.Helper()
	d, err := time.ParseDuration(off)
	if err != nil {
		tb.Fatal(err)
	}
	return t0.Add(d)
}

// atOrZero is at(off), or the zero time for "".
func atOrZero(tb testing.TB, off string) time.Time {
	tb.Helper()
	if off == "" {
		return time.Time{}
	}
	return at(tb, off)
}

// lv builds Levels from "level:min-max@offset" items.
func lv(tb testing.TB, items ...string) *Levels {
	tb.Helper()
	var l Levels
	for _, it := range items {
		var level int
		var minT, maxT uint64
		var off string
		if _, err := fmt.Sscanf(strings.Replace(it, "@", " ", 1), "%d:%d-%d %s", &level, &minT, &maxT, &off); err != nil {
			tb.Fatalf("bad item %q: %v", it, err)
		}
		l[level] = append(l[level], &ltx.FileInfo{Level: level, MinTXID: ltx.TXID(minT), MaxTXID: ltx.TXID(maxT), CreatedAt: at(tb, off)})
	}
	return &l
}

func describe(j Job) string {
	var s []string
	for _, f := range j.Inputs {
		s = append(s, fmt.Sprintf("%d-%d", f.MinTXID, f.MaxTXID))
	}
	return fmt.Sprintf("L%d<-%s", j.Level, strings.Join(s, ","))
}

func TestNext(t *testing.T) {
	std := Config{Intervals: DefaultIntervals, L0Retention: DefaultL0Retention}
	run := func(n int) []string { // n contiguous level-0 files created at t0
		var items []string
		for i := 1; i <= n; i++ {
			items = append(items, fmt.Sprintf("0:%d-%d@0s", i, i))
		}
		return items
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		files []string
		now   string
		job   string // "" for none
		due   string // offset of the next due time; "" for zero
	}{
		{"Empty", std, nil, "1h", "", ""},
		{"WindowOpen", std, []string{"0:1-1@5s", "0:2-2@10s"}, "20s", "", "30s"},
		{"WindowEnded", std, []string{"0:1-1@5s", "0:2-2@10s"}, "31s", "L1<-1-1,2-2", ""},
		{"OncePerWindow", std, []string{"0:1-1@5s", "0:2-2@10s", "1:1-2@30.5s", "0:3-3@40s"}, "50s", "", "60s"},
		{"NextWindow", std, []string{"0:1-1@5s", "0:2-2@10s", "1:1-2@30.5s", "0:3-3@40s"}, "60s", "L1<-3-3", ""},
		{"AfterIdleWaitsForTheCandidatesWindow", Config{Intervals: DefaultIntervals[:1]}, []string{"1:1-2@30.5s", "0:3-3@310s"}, "311s", "", "330s"},
		{"Level2", std, []string{"1:1-2@30s", "1:3-4@60s"}, "300s", "L2<-1-2,3-4", ""},
		{"Level2NotYet", std, []string{"1:1-2@30s", "1:3-4@60s"}, "299s", "", "300s"},
		{"LowestLevelFirst", std, []string{"0:5-5@250s", "1:1-2@30s", "1:3-4@60s"}, "300s", "L1<-5-5", ""},
		{"GapEndsTheRun", std, []string{"0:1-2@0s", "0:3-4@1s", "0:9-10@2s"}, "30s", "L1<-1-2,3-4", ""},
		{"AfterTheGap", std, []string{"0:1-2@0s", "0:3-4@1s", "0:9-10@2s", "1:1-4@30s"}, "60s", "L1<-9-10", ""},
		{"StraddlingSkipped", std, []string{"1:1-5@0s", "0:4-6@1s", "0:7-8@2s"}, "31s", "L1<-7-8", ""},
		{"DuplicateRangeInRun", std, []string{"0:1-2@0s", "0:1-2@1s", "0:3-3@2s"}, "31s", "L1<-1-2,3-3", ""},
		// A store whose clock runs an hour ahead: its times count as now.
		{"ClockSkewAhead", std, []string{"0:1-1@1h"}, "10s", "", "30s"},
		{"ClockSkewBehind", std, []string{"0:1-1@-1h"}, "10s", "L1<-1-1", ""},
		{"Off", Config{}, []string{"0:1-1@0s"}, "1h", "", ""},
		{"OneLevel", Config{Intervals: []time.Duration{time.Second}}, []string{"1:1-1@0s", "0:2-2@0s"}, "1s", "L1<-2-2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, ok, due := Next(tc.cfg, lv(t, tc.files...), at(t, tc.now))
			got := ""
			if ok {
				got = describe(job)
			}
			if got != tc.job {
				t.Errorf("job %q, want %q", got, tc.job)
			}
			if want := atOrZero(t, tc.due); !due.Equal(want) {
				t.Errorf("due %v, want %v", due, want)
			}
		})
	}
	t.Run("MaxInputs", func(t *testing.T) {
		files := run(MaxInputs + 40)
		job, ok, _ := Next(std, lv(t, files...), at(t, "30s"))
		if !ok || len(job.Inputs) != MaxInputs || job.MinTXID() != 1 || job.MaxTXID() != MaxInputs {
			t.Fatalf("job %v (ok %v), want the first %d files", describe(job), ok, MaxInputs)
		}
		// The rest of that window is due at once, not in the next window
		// (level 0 grew by what one job could not take, every window).
		files = append(files, fmt.Sprintf("1:1-%d@30.5s", MaxInputs))
		job, ok, _ = Next(std, lv(t, files...), at(t, "31s"))
		if !ok || job.MinTXID() != MaxInputs+1 || job.MaxTXID() != MaxInputs+40 {
			t.Fatalf("after a job cut at %d inputs: job %v (ok %v), want the 40 left", MaxInputs, describe(job), ok)
		}
	})
}

// expiryCase is one row of an expiry table: files at now, the files that
// expire ("level:min-max", space-separated) and the next expiry time.
type expiryCase struct {
	name    string
	cfg     Config
	files   []string
	now     string
	expired string
	next    string
}

func runExpiry(t *testing.T, cases []expiryCase, fn func(Config, *Levels, time.Time) ([]*ltx.FileInfo, time.Time)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := lv(t, tc.files...)
			exp, next := fn(tc.cfg, l, at(t, tc.now))
			if got := names(exp); got != tc.expired {
				t.Errorf("expired %q, want %q", got, tc.expired)
			}
			requireCutShortSafe(t, l, exp)
			if want := atOrZero(t, tc.next); !next.Equal(want) {
				t.Errorf("next %v, want %v", next, want)
			}
		})
	}
}

// requireCutShortSafe requires that deleting expired in order, cut short
// after any file (a killed owner), leaves no file end that a chain from a
// snapshot reached before unreachable.
func requireCutShortSafe(t *testing.T, l *Levels, expired []*ltx.FileInfo) {
	t.Helper()
	var all []*ltx.FileInfo
	for _, files := range l {
		all = append(all, files...)
	}
	before := restore.Reachable(all)
	for n := 1; n <= len(expired); n++ {
		gone := make(map[*ltx.FileInfo]bool)
		for _, f := range expired[:n] {
			gone[f] = true
		}
		left := slices.DeleteFunc(slices.Clone(all), func(f *ltx.FileInfo) bool { return gone[f] })
		after := restore.Reachable(left)
		var oldest ltx.TXID
		for _, f := range left {
			if f.MinTXID == 1 && (oldest == 0 || f.MaxTXID < oldest) {
				oldest = f.MaxTXID
			}
		}
		for _, f := range left {
			if f.MaxTXID >= oldest && before[f.MaxTXID] && !after[f.MaxTXID] {
				t.Fatalf("deletion cut short after %s: txid %d, restorable before, no longer is", names(expired[:n]), f.MaxTXID)
			}
		}
	}
}

func TestL0Expired(t *testing.T) {
	std := Config{Intervals: DefaultIntervals, L0Retention: 5 * time.Minute}
	runExpiry(t, []expiryCase{
		// 1 and 2 go together, when 2 is old enough; 3 is not covered.
		{"CoveredAndOld", std, []string{"0:1-1@0s", "0:2-2@10s", "0:3-3@20s", "1:1-2@30s"}, "305s", "", "310s"},
		{"GroupExpires", std, []string{"0:1-1@0s", "0:2-2@10s", "0:3-3@20s", "1:1-2@30s"}, "310s", "0:2-2 0:1-1", ""},
		// Newest first: cut short, the rest still restores (oldest first
		// left 3 behind a hole: listed, refused).
		{"NewestFirst", std, []string{"9:1-1@0s", "0:2-2@0s", "0:3-3@0s", "0:4-4@10s", "1:2-4@30s"}, "310s", "0:4-4 0:3-3 0:2-2", ""},
		{"GroupsApart", std, []string{"0:1-1@0s", "0:2-2@10s", "0:3-3@40s", "1:1-2@30s", "1:3-3@60s"}, "330s", "0:2-2 0:1-1", "340s"},
		{"NotCoveredStays", std, []string{"0:1-1@0s", "0:2-2@10s", "0:3-3@20s", "1:1-2@30s"}, "1h", "0:2-2 0:1-1", ""},
		// Level 1 reaches past the file, but no level-1 file holds its
		// whole range: deleting it would leave TXIDs 10-12 nowhere.
		{"StraddleNotCovered", std, []string{"0:8-12@0s", "1:1-9@30s", "1:13-20@60s"}, "1h", "", ""},
		{"CoveredByALaterFile", std, []string{"0:14-15@0s", "1:1-9@30s", "1:13-20@60s"}, "1h", "0:14-15", ""},
		{"Off", Config{}, []string{"0:1-1@0s", "1:1-1@30s"}, "1h", "", ""},
		// A snapshot at TXID 3 inside the level-1 file 2-6: restoring from
		// it reads level-0 files 4, 5 and 6: the group stays (while that
		// snapshot does).
		{"SnapshotInsideLevel1", std, []string{"9:1-1@0s", "0:2-2@0s", "0:3-3@0s", "9:1-3@0s", "0:4-4@0s", "0:5-6@0s", "1:2-6@30s"}, "1h", "", ""},
		{"SkewAheadWaitsFromNow", std, []string{"0:1-1@2h", "1:1-1@2h"}, "0s", "", "300s"},
	}, L0Expired)
}
