package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPlainWriterTruncates: a writer without the extension commits and
// truncates the WAL (wal_checkpoint(TRUNCATE)) while the replicating
// process idles: its frames are then only in the database file, and the
// WAL is empty at both of the owner's looks. litestream_sync returned at
// once without the row, and status said ok, for every such commit after
// the first (found by an attack, 5 of 5 runs). SQLite's wal-index change
// counter shows the commit: a snapshot takes it. Another process's status
// must not say ok while the replica lacks a plain commit it can read
// either (60 of 60 said ok).
func TestPlainWriterTruncates(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER PRIMARY KEY); INSERT INTO t VALUES(0);")
	p.sync(20000)
	q := startC(t, db, dbURI(db), nil) // another process; it reads only
	replica := fileURL(defaultReplica(db))
	for i := 1; i <= 5; i++ {
		if out, err := exec.Command(sqlite3Bin, db, "INSERT INTO t VALUES("+strconv.Itoa(i)+"); PRAGMA wal_checkpoint(TRUNCATE);").CombinedOutput(); err != nil {
			t.Fatalf("plain sqlite3: %v\n%s", err, out)
		}
		if got := q.must("SELECT max(x) FROM t;"); firstLine(got) != strconv.Itoa(i) {
			t.Fatalf("the other process reads max %q, want %d", got, i)
		}
		if st := q.status(); st.State() == "ok" {
			out := restore(t, replica, "-txid", strconv.FormatInt(st.Int("replicated_txid"), 10))
			if got := sqlitePlain(t, out, "SELECT max(x) FROM t;"); got != strconv.Itoa(i) {
				t.Errorf("plain commit %d: the other process's status says ok, but the replica holds max %s: %s", i, got, st)
			}
		}
		txid := p.sync(20000)
		out := restore(t, replica, "-txid", strconv.FormatInt(txid, 10))
		if got := sqlitePlain(t, out, "SELECT max(x) FROM t;"); got != strconv.Itoa(i) {
			t.Errorf("plain commit %d: litestream_sync returned %d, whose restore holds max %s", i, txid, got)
		}
	}
	if r := q.close(); r.Code != 0 {
		t.Fatalf("C client exit\n%s", r)
	}
	if r := p.close(); r.Code != 0 {
		t.Fatalf("C client exit\n%s", r)
	}
	verifyRestore(t, db, replica)
}

// TestOwnerStopped: while the replicating process is stopped (SIGSTOP),
// another process's commit leaves its status behind with a reason naming
// the owner, and its litestream_sync times out saying so (it said behind
// with local = replicated, nothing pending and no reason; found by an
// attack). Once the owner runs again, the commit ships.
func TestOwnerStopped(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	p.sync(20000)
	q := startC(t, db, dbURI(db), nil)
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	q.must("INSERT INTO t VALUES(2);")
	want := "not yet captured by the replicating process (pid " + strconv.Itoa(pid) + ")"
	if st := q.status(); st.State() != "behind" || !strings.Contains(st.Str("reason"), want) {
		t.Errorf("status with the owner stopped: %s, want behind, the reason naming pid %d", st, pid)
	}
	if _, e := q.exec(syncLine(500)); !strings.Contains(e, "timed out") || !strings.Contains(e, want) {
		t.Errorf("litestream_sync with the owner stopped: %q, want a timeout naming the owner", e)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	q.sync(20000)
	for _, c := range []*cproc{q, p} {
		if r := c.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
	}
	verifyRestore(t, db, fileURL(defaultReplica(db)))
}

// TestStateDirDeleted: the state directory deleted under the replicating
// process. A second process then takes a new lock and replicates; the
// first must stop, loudly, or two owners write one replica: overlapping
// level-0 files whose TXIDs would not restore (found by an attack: 6-14 of
// 40 points in 4 of 4 runs).
func TestStateDirDeleted(t *testing.T) {
	dir, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
	for i := 0; i < 20; i++ {
		p.must("INSERT INTO t(v) VALUES('p');")
	}
	p.sync(20000)
	if err := os.RemoveAll(db + "-litestream"); err != nil {
		t.Fatal(err)
	}
	q := startC(t, db, dbURI(db), nil)
	for i := 0; i < 20; i++ {
		p.must("INSERT INTO t(v) VALUES('p after');")
		q.must("INSERT INTO t(v) VALUES('q');")
	}
	st, ok := p.pollStatus(10*time.Second, func(st status) bool { return st.State() == "not-replicating" })
	if !ok || !strings.Contains(st.Str("reason"), "state directory") {
		t.Errorf("first process after its state directory was deleted: %s, want not-replicating naming it", st)
	}
	t0 := time.Now()
	if _, e := p.exec(syncLine(10000)); !strings.Contains(e, "state directory") || time.Since(t0) > 2*time.Second {
		t.Errorf("litestream_sync in the first process: %q after %v, want an error naming the state directory at once", e, time.Since(t0))
	}
	q.sync(20000)
	for _, c := range []*cproc{p, q} {
		if r := c.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
	}
	// A third process ships whatever is left, then every level-0 end
	// restores.
	requireNoErr(t, "last", nil, runC(t, dir, dbURI(db), []string{syncLine(20000)}, nil))
	replica := fileURL(defaultReplica(db))
	verifyRestore(t, db, replica)
	r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "ls", "-json", replica)
	var ls struct {
		Files []struct {
			Level   int   `json:"level"`
			MaxTXID int64 `json:"max_txid"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ls); err != nil {
		t.Fatalf("ls -json: %v\n%s", err, r)
	}
	for _, f := range ls.Files {
		if f.Level != 0 {
			continue
		}
		if rr := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "-o", filepath.Join(t.TempDir(), "r.db"), "-txid", strconv.FormatInt(f.MaxTXID, 10), replica); rr.Code != 0 {
			t.Errorf("restore at TXID %d (a level-0 end): %s", f.MaxTXID, rr)
		}
	}
}
