package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvSetInProcess: LITESTREAM_* variables the application sets itself
// (os.environ in Python, before loading the extension and after) count as
// the ones it was started with. The Go runtime of a shared library copies
// the environment of the exec: the replica and the log level set this way
// were ignored (found by an attack).
func TestEnvSetInProcess(t *testing.T) {
	dir, db := newDB(t)
	before, after := filepath.Join(dir, "before-load"), filepath.Join(dir, "after-load")
	script := `
import os, sqlite3, sys, json
db, ext, before, after = sys.argv[1:5]
os.environ["LITESTREAM_REPLICA_URL"] = "file://" + before
m = sqlite3.connect(":memory:"); m.enable_load_extension(True); m.load_extension(ext); m.close()
def run(path):
    c = sqlite3.connect("file:%s?vfs=litestream" % path, uri=True, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL").fetchall()
    c.execute("CREATE TABLE IF NOT EXISTS t(x)"); c.execute("INSERT INTO t VALUES(1)")
    c.execute("SELECT litestream_sync(20000)").fetchone()
    print("REPLICA", json.loads(c.execute("SELECT litestream_status()").fetchone()[0])["replica"])
    c.close()
run(db)
os.environ["LITESTREAM_REPLICA_URL"] = "file://" + after
run(db + "2")
`
	r := runCmd(t, dir, nil, strings.NewReader(script), python3Bin, "-", db, extPath, before, after)
	if r.Code != 0 {
		t.Fatalf("python\n%s", r)
	}
	want := []string{"REPLICA file://" + before, "REPLICA file://" + after}
	got := splitLines(strings.TrimSpace(r.Stdout))
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("replicas %q, want %q\n%s", got, want, r)
	}
	requireReplica(t, before)
	requireReplica(t, after)
}
