package tests

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCompareSmoke runs ./tests/bench/compare.sh --smoke (the side-by-side
// benchmark against the Litestream sidecar, issue 12) so that it cannot
// rot: every table is printed, every paced commit is found in each
// replica, and an idle extension makes no requests. Its figures are too
// short to mean much; the full run writes docs/performance.md.
func TestCompareSmoke(t *testing.T) {
	r := runCmd(t, repoRoot, nil, nil, filepath.Join(repoRoot, "tests", "bench", "compare.sh"), "--smoke")
	if r.Code != 0 {
		t.Fatalf("compare.sh --smoke\n%s", r)
	}
	out := r.Stdout
	for _, want := range []string{"| write workload | plain SQLite |", "| peak RSS", "| commit → durable in the replica |", "| 50 txn/s for", "| idle for"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare.sh --smoke printed no %q table\n%s", want, out)
		}
	}
	lagRow := regexp.MustCompile(`(?m)^\| (50|1000) txn/s, (.*) \| \d+ \| \d+ \| \d+ \| (\d+) \| (\d+) \|$`)
	rows := lagRow.FindAllStringSubmatch(out, -1)
	if len(rows) != 8 {
		t.Errorf("%d lag rows, want 8 (2 rates × 4 systems)\n%s", len(rows), out)
	}
	for _, m := range rows {
		if m[4] != "0" || m[3] == "0" {
			t.Errorf("%s txn/s, %s: %s commits, %s not found in the replica", m[1], m[2], m[3], m[4])
		}
	}
	if !regexp.MustCompile(`(?m)^\| extension \(s3\) \| 0 \| `).MatchString(out) {
		t.Errorf("an idle extension made requests (or the idle row is missing)\n%s", out)
	}
	t.Logf("\n%s", out)
}
