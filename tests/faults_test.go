package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Faults of issue 10 that need no crash loop: each found broken, each with
// what the user sees.

// TestOpenFails: a database SQLite cannot open leaves nothing behind. The
// state directory and lock (and any missing parent directory: the open
// then succeeded in it) were created, and replication started, before the
// real open failed.
func TestOpenFails(t *testing.T) {
	for _, c := range []struct{ name, rel, param string }{
		{"MissingDirectory", "missing-dir/app.db", ""},
		{"ReadOnlyMissingFile", "app.db", "mode=ro"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			uri := dbURI(filepath.Join(dir, c.rel))
			if c.param != "" {
				uri = dbURI(filepath.Join(dir, c.rel), c.param)
			}
			r := runC(t, dir, uri, nil, nil)
			if r.Code != 3 || !strings.HasPrefix(r.Stdout, "OPENFAIL 14 ") {
				t.Errorf("C client: want exit 3 and OPENFAIL 14 (SQLITE_CANTOPEN)\n%s", r)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				t.Errorf("failed open created %s", e.Name())
			}
		})
	}
}

// TestCheckpointStorm (item 1): back-to-back wal_checkpoint(TRUNCATE)
// after every commit in one process. Each truncation waits at its gate
// until the commit before it is captured, so the chain continues: one
// snapshot in all (the first), no warning, and a litestream_sync right
// after the storm returns at once (a tight loop made 315 snapshots, 158 MB
// of replica for a 1.3 MB database, and the sync timed out with 12,547
// transactions pending). Also with the checkpoints on a second connection
// or in a second process, whose writer's headers have random salts.
func TestCheckpointStorm(t *testing.T) {
	const commits = 300
	for _, tc := range []struct {
		name, after string
		other       bool // after runs on a second connection of the process
		process     bool // after runs in a second process
	}{
		{"Truncate", "PRAGMA wal_checkpoint(TRUNCATE);", false, false},
		// Each checkpoint that restarts bumps salt-1, an empty WAL's too:
		// two in a row left a header two ahead, taken for a missed
		// generation (74 snapshots in 100 commits; found by an attack).
		{"TruncateTwice", "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA wal_checkpoint(TRUNCATE);", false, false},
		{"RestartThenTruncate", "PRAGMA wal_checkpoint(RESTART); PRAGMA wal_checkpoint(TRUNCATE);", false, false},
		// A connection that never restarted the WAL itself writes a header
		// with random salts after another one truncated it: nothing in the
		// header links it to the generation before (every other commit
		// snapshotted; found by an attack). SQLite's wal-index change
		// counter does.
		{"OtherConnection", "PRAGMA wal_checkpoint(TRUNCATE);", true, false},
		{"OtherProcess", "PRAGMA wal_checkpoint(TRUNCATE);", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, db := newDB(t)
			var p *cproc
			if tc.other {
				p = startPy(t, db, dbURI(db), nil)
			} else {
				p = startC(t, db, dbURI(db), nil)
			}
			p.must("PRAGMA journal_mode=WAL; CREATE TABLE s(id INTEGER PRIMARY KEY, v BLOB);")
			var q *cproc
			if tc.process {
				q = startC(t, db, dbURI(db), nil)
			}
			start := time.Now()
			for i := 0; i < commits; i++ {
				switch {
				case tc.other:
					p.must("INSERT INTO s(v) VALUES(randomblob(3000));")
					p.must("@1 " + tc.after)
				case tc.process:
					p.must("INSERT INTO s(v) VALUES(randomblob(3000));")
					q.must(tc.after)
				default:
					p.must("INSERT INTO s(v) VALUES(randomblob(3000)); " + tc.after)
				}
			}
			storm := time.Since(start)
			t0 := time.Now()
			txid := p.sync(30000)
			t.Logf("%d commits, each followed by %q, in %v (%.2f ms each); sync after it took %v, TXID %d",
				commits, tc.after, storm.Round(time.Millisecond), float64(storm.Microseconds())/1000/commits, time.Since(t0).Round(time.Millisecond), txid)
			if q != nil {
				if r := q.close(); r.Code != 0 {
					t.Fatalf("checkpointing process\n%s", r)
				}
			}
			closeAndVerify(t, p, db, 1)
		})
	}
}

// TestExitWithoutClose: a process that leaves with its database open.
// exit() in C and a normal interpreter shutdown in python run the
// extension's exit hook, which ships what is spooled within
// LITESTREAM_EXIT_FLUSH_MS: the replica is whole at once. os._exit runs no
// hook: the spool keeps the rest, and the next process to open the
// database ships it, even one that only reads.
func TestExitWithoutClose(t *testing.T) {
	const rows = 300
	var inserts strings.Builder
	for i := 0; i < rows; i++ {
		inserts.WriteString("INSERT INTO e(v) VALUES(randomblob(2000));")
	}
	for _, tc := range []struct {
		name    string
		py      bool
		exit    string
		flushes bool // the exit hook runs
	}{
		{"CExit", false, ".exit", true},
		{"PythonShutdown", true, ".exit", true},
		{"PythonOSExit", true, ".os_exit", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := newDB(t)
			lines := []string{"PRAGMA journal_mode=WAL; CREATE TABLE e(id INTEGER PRIMARY KEY, v BLOB);", inserts.String(), tc.exit}
			env := []string{"LITESTREAM_EXIT_FLUSH_MS=5000"}
			var r result
			if tc.py {
				r = runPy(t, dir, dbURI(db), lines, env)
			} else {
				r = runC(t, dir, dbURI(db), lines, env)
			}
			if r.Code != 0 || strings.Count(r.Stdout, "OK") != 2 {
				t.Fatalf("writer\n%s", r)
			}
			replica := fileURL(defaultReplica(db))
			if tc.flushes {
				out := restore(t, replica)
				if got := sqlitePlain(t, out, "SELECT count(*) FROM e;"); got != strconv.Itoa(rows) {
					t.Fatalf("the replica right after the exit holds %s rows, want %d: the exit hook did not ship them\nwriter stderr:\n%s", got, rows, tail(r.Stderr, 2000))
				}
			}
			// The next opener only reads.
			rd := runC(t, dir, dbURI(db), []string{"SELECT count(*) FROM e;"}, nil)
			if rd.Code != 0 || !strings.Contains(rd.Stdout, strconv.Itoa(rows)+"\n") {
				t.Fatalf("reader\n%s", rd)
			}
			verifyRestore(t, db, replica)
		})
	}
}

// TestReplicaEmptied: the replica directory (or only its snapshots)
// deleted under a running owner. The next upload notices the newest
// snapshot is gone, the replica is confirmed again, and a snapshot
// follows: the litestream_sync after the deletion returns only once the
// replica restores to the source (it returned at once, status ok, with a
// replica that could never be restored: found by the attack).
func TestReplicaEmptied(t *testing.T) {
	for _, tc := range []struct{ name, rel string }{
		{"Directory", ""},
		{"Snapshots", "ltx/9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, db := newDB(t)
			p := startC(t, db, dbURI(db), nil)
			p.must("PRAGMA journal_mode=WAL; CREATE TABLE e(id INTEGER PRIMARY KEY, v BLOB);")
			p.must(insertRows("e", 20, 500))
			p.sync(20000)
			if err := os.RemoveAll(filepath.Join(defaultReplica(db), tc.rel)); err != nil {
				t.Fatal(err)
			}
			p.must(insertRows("e", 5, 500))
			p.sync(20000)
			if st := p.status(); st.State() != "ok" {
				t.Errorf("status after the sync: %s", st)
			}
			verifyRestore(t, db, fileURL(defaultReplica(db)))
			if r := p.close(); r.Code != 0 {
				t.Fatalf("client exit\n%s", r)
			}
			if !strings.Contains(p.stderr.String(), "checking the replica") {
				t.Errorf("no warning that the replica lost files:\n%s", tail(p.stderr.String(), 2000))
			}
		})
	}
}

// TestBadParamsRefused: values the extension once took silently (an empty
// value, a NUL, a parameter given twice, a replica at the filesystem root,
// in the state directory or on /dev/null: found by the attack) fail the
// open, named on stderr, and leave nothing behind.
func TestBadParamsRefused(t *testing.T) {
	for _, tc := range []struct{ name, param, want string }{
		{"EmptyReplica", "replica=", `"replica" is empty`},
		{"NULReplica", "replica=%00", `"replica" is empty`},
		{"Twice", "compaction=1s&compaction=2s", `"compaction" is given twice`},
		{"Root", "replica=file:///", "is the filesystem root"},
		{"StateDir", "replica=STATE", "is in the database's state directory"},
		{"DevNull", "replica=/dev/null", "exists and is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := newDB(t)
			r := runC(t, dir, dbURI(db, strings.ReplaceAll(tc.param, "STATE", db+"-litestream")), []string{"SELECT 1;"}, nil)
			if r.Code != 3 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("want exit 3 naming %q\n%s", tc.want, r)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("a refused open left %d entries in the directory", len(ents))
			}
		})
	}
}

// TestSyncTimeoutArgument: litestream_sync takes an integer number of
// milliseconds from 0 to a day (86400000); anything else is refused
// naming it. (Values past 32 bits wrapped: 2147483648 waited -2147483648
// ms; text, blobs and fractions waited 0 ms; found by an attack.)
func TestSyncTimeoutArgument(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	for _, tc := range []struct {
		arg string
		ok  bool
	}{
		{"", true}, {"NULL", true}, {"5000", true}, {"'5000'", true}, {"2.0", true}, {"86400000", true},
		{"86400001", false}, {"2147483648", false}, {"4294967296", false}, {"9223372036854775807", false},
		{"-1", false}, {"1.5", false}, {"'abc'", false}, {"x'00'", false}, {"''", false},
	} {
		rows, e := p.exec("SELECT litestream_sync(" + tc.arg + ");")
		switch {
		case tc.ok && e != "":
			t.Errorf("litestream_sync(%s): %s", tc.arg, e)
		case !tc.ok && (e == "" || !strings.Contains(e, "timeout_ms must be an integer from 0 to 86400000")):
			t.Errorf("litestream_sync(%s) = %q, %q; want a refusal naming timeout_ms", tc.arg, rows, e)
		}
	}
	// 0 is taken: it does not wait for the next capture step.
	if _, e := p.exec("SELECT litestream_sync(0);"); strings.Contains(e, "must be an integer") {
		t.Errorf("litestream_sync(0) refused: %s", e)
	}
	if r := p.close(); r.Code != 0 {
		t.Fatalf("client exit\n%s", r)
	}
}
