package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

// threadsScript loads the extension into Debian's python3, replicates one
// commit (so the replicator's goroutines have run on threads made after
// the load), then prints "main POLICY" or "other POLICY" for every thread
// of the process (os.sched_getscheduler takes a thread id on Linux).
const threadsScript = `
import os, sqlite3, sys
c = sqlite3.connect(":memory:")
c.enable_load_extension(True)
c.load_extension(sys.argv[1])
db = sqlite3.connect("file:" + sys.argv[2] + "?vfs=litestream", uri=True)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t(x)")
db.execute("INSERT INTO t VALUES (1)")
db.commit()
db.execute("SELECT litestream_sync(10000)").fetchone()
for t in sorted(os.listdir("/proc/self/task")):
    tid = int(t)
    try:
        policy = os.sched_getscheduler(tid)
    except ProcessLookupError:
        continue  # the thread ended meanwhile
    print("main" if tid == os.getpid() else "other", policy)
db.close()
`

// TestReplicatorThreadsBatch checks that the extension moves the Go
// runtime's threads to SCHED_BATCH (so they never preempt the
// application's threads when they wake) and never the application's own,
// and that LITESTREAM_BATCH_THREADS=0 leaves every thread alone. Not every
// runtime thread need be switched: one the runtime creates while the
// application's thread runs extension code inherits its policy and
// switches when it first runs replication work (internal/threads), which
// an idle one may not have done yet.
func TestReplicatorThreadsBatch(t *testing.T) {
	const schedOther, schedBatch = "0", "3"
	for _, tc := range []struct {
		name  string
		env   []string
		batch bool // some replicator threads are SCHED_BATCH (else none is)
	}{
		{"default", nil, true},
		{"off", []string{"LITESTREAM_BATCH_THREADS=0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := runCmd(t, dir, tc.env, strings.NewReader(""), python3Bin, "-c", threadsScript, extPath, filepath.Join(dir, "app.db"))
			if r.Code != 0 {
				t.Fatalf("python3: %v", r)
			}
			others, batch := 0, 0
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				who, policy, _ := strings.Cut(line, " ")
				switch {
				case who == "main" && policy != schedOther:
					t.Errorf("the application's thread has policy %s, want %s (SCHED_OTHER)", policy, schedOther)
				case who == "other":
					others++
					switch policy {
					case schedBatch:
						batch++
					case schedOther:
					default:
						t.Errorf("a replicator thread has policy %s, want %s or %s", policy, schedOther, schedBatch)
					}
				}
			}
			if others == 0 {
				t.Fatalf("no thread besides the application's: %q", r.Stdout)
			}
			if (batch > 0) != tc.batch {
				t.Errorf("%d of %d replicator threads are SCHED_BATCH, want some: %v", batch, others, tc.batch)
			}
		})
	}
}
