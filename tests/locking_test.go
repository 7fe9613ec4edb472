package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoBusyForTheApp checks that the extension never makes a single-
// connection application see SQLITE_BUSY. Such an application (no
// busy_timeout) never sees a lock conflict with plain SQLite, so nothing the
// replicator does behind it, such as the read transaction a snapshot holds,
// may take a lock that makes the application's write fail. Each new
// database is snapshotted at its first commit, while the application goes
// on writing; a snapshot reader that opened the WAL before the application
// had built its wal-index ran WAL recovery under the WAL_WRITE lock, and the
// application's next write failed with SQLITE_BUSY_RECOVERY (5 of 300
// databases on the project machine).
func TestNoBusyForTheApp(t *testing.T) {
	n := 150
	if testing.Short() {
		n = 40
	}
	dir := t.TempDir()
	path := func(i int) string { return filepath.Join(dir, fmt.Sprintf("db%03d.db", i)) }
	p := startC(t, path(0), dbURI(path(0)), nil)
	for i := 0; i < n; i++ {
		if i > 0 {
			p.must(".open " + dbURI(path(i)))
		}
		// One line: no pause in which the replicator could catch up.
		p.must("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t(x); " +
			"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);")
		if got := p.must("SELECT count(*) FROM t;"); strings.Join(got, ",") != "3" {
			t.Fatalf("db %d: count=%v, want 3", i, got)
		}
	}
	p.sync(60000)
	if r := p.close(); r.Code != 0 {
		t.Fatalf("C client: %s", r)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		verifyRestore(t, path(i), fileURL(defaultReplica(path(i))))
	}
}
