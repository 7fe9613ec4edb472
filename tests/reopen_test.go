package tests

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReopenAfterForeignWriter: a process closes its only connection to a
// database it replicates and lives on; a writer without the extension
// commits (with and without a TRUNCATE checkpoint), and its close
// checkpoints into the database file and deletes the WAL; the process
// opens the database again and commits. The WAL it finds is a new file,
// like the one it deleted itself, and litestream_sync confirmed commits
// on top of a state the replica never saw: the restore failed its
// post-apply checksum while status said ok (found by an attack). Now the
// reopen checks the database against the spooled position and snapshots.
// A reopen with nothing changed in between snapshots nothing.
func TestReopenAfterForeignWriter(t *testing.T) {
	for _, tc := range []struct {
		name, plain string
		snapshots   int
	}{
		// The plain writer's pages are ones the later commit does not
		// rewrite (another table), so only a snapshot brings them, or
		// the idle owner's capture of the plain WAL before its close
		// deleted it (then the reopen resumes: 0, not checked).
		{"Plain", "INSERT INTO u(v) VALUES('plain'), ('plain');", 0},
		{"PlainTruncate", "INSERT INTO u(v) VALUES('plain'); PRAGMA wal_checkpoint(TRUNCATE); INSERT INTO u(v) VALUES('after');", 0},
		{"Nobody", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := newDB(t)
			p := startC(t, db, dbURI(db), nil)
			p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT);")
			p.must("INSERT INTO t(v) VALUES('ext');")
			p.sync(20000)
			other := filepath.Join(dir, "other.db")
			if rows := p.must(".open " + dbURI(other)); len(rows) == 0 || !strings.Contains(rows[0], "OPENED") {
				t.Fatalf(".open other: %q", rows)
			}
			if tc.plain != "" {
				sqlitePlain(t, db, tc.plain)
			}
			if fileExists(db + "-wal") {
				t.Fatalf("the WAL was not deleted by the last close")
			}
			p.must(".open " + dbURI(db))
			p.must("INSERT INTO t(v) VALUES('ext again');")
			p.sync(20000)
			// Right after a sync a step may still be due (the WAL changed
			// after the last one began): behind for a moment.
			if st, ok := p.pollStatus(10*time.Second, func(st status) bool { return st.State() == "ok" }); !ok {
				t.Errorf("status after the reopen: %s", st)
			}
			closeAndVerify(t, p, db, tc.snapshots)
		})
	}
}

// reopenAfterPlain starts a client that writes and syncs a row of table t,
// opens another database (the process keeps no connection to this one),
// lets a plain sqlite3 run plain on it and opens it again.
func reopenAfterPlain(t *testing.T, plain string) (*cproc, string) {
	dir, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES('ext');")
	p.sync(20000)
	p.must(".open " + dbURI(filepath.Join(dir, "other.db")))
	sqlitePlain(t, db, plain)
	p.must(".open " + dbURI(db))
	return p, db
}

// TestReopenInRollbackMode: while the process has no connection open, a
// writer without the extension switches the database to a rollback
// journal and commits. The reopened database's status said ok (local =
// replicated) with those commits in no replica, though litestream_sync
// failed (found by an attack): it now says not-replicating, naming the
// journal mode, until WAL mode is back and a snapshot takes the rows.
func TestReopenInRollbackMode(t *testing.T) {
	p, db := reopenAfterPlain(t, "PRAGMA journal_mode=DELETE; INSERT INTO t(v) VALUES('plain'), ('plain');")
	if got := p.must("SELECT count(*) FROM t;"); len(got) != 1 || got[0] != "3" {
		t.Fatalf("rows after the reopen: %q", got)
	}
	if st := p.status(); st.State() != "not-replicating" || !strings.Contains(st.Str("reason"), "journal_mode") {
		t.Errorf("status right after the reopen in rollback mode: %s", st)
	}
	if _, e := p.exec(syncLine(2000)); e == "" {
		t.Errorf("litestream_sync in rollback mode succeeded")
	}
	p.must("PRAGMA journal_mode=WAL;")
	p.must("INSERT INTO t(v) VALUES('ext again');")
	p.sync(20000)
	closeAndVerify(t, p, db, 2)
}

// TestReopenAfterRollbackRoundTrip: while the process had no connection, a
// plain sqlite3 switched to a rollback journal, wrote and switched back to
// WAL: the WAL is gone, and the only trace is the changed file. Right
// after the reopen, before a step has checked it, status said ok with the
// plain row in no replica (found by an attack, 4 of 4 runs). It may say ok
// only once the replica holds the row.
func TestReopenAfterRollbackRoundTrip(t *testing.T) {
	p, db := reopenAfterPlain(t, "PRAGMA journal_mode=DELETE; INSERT INTO t(v) VALUES('plain'); PRAGMA journal_mode=WAL;")
	st := p.status()
	if st.State() == "ok" {
		// As of the TXID that status called replicated (a step may have
		// shipped more since).
		out := restore(t, fileURL(defaultReplica(db)), "-txid", strconv.FormatInt(st.Int("replicated_txid"), 10))
		if got := sqlitePlain(t, out, "SELECT count(*) FROM t WHERE v = 'plain';"); got != "1" {
			t.Errorf("status right after the reopen says ok, but the replica lacks the plain row: %s", st)
		}
	}
	t.Logf("status right after the reopen: %s", st)
	p.sync(20000)
	closeAndVerify(t, p, db, 2)
}

// TestReplicaConflict: a second process opening a database with another
// replica than the one the replicating process ships to is refused,
// naming both (its commits went to the owner's replica while its status
// named its own; found by an attack). The same replica, or none given
// (the default), opens.
func TestReplicaConflict(t *testing.T) {
	dir, db := newDB(t)
	r1 := filepath.Join(dir, "r1")
	a := startC(t, db, dbURI(db, "replica="+fileURL(r1)), nil)
	a.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	a.sync(20000)
	r := runC(t, dir, dbURI(db, "replica="+fileURL(filepath.Join(dir, "r2"))), []string{"SELECT 1;"}, nil)
	if r.Code != 3 || !strings.Contains(r.Stderr, "differs from "+fileURL(r1)) {
		t.Errorf("a second process with another replica: want exit 3 naming %s\n%s", fileURL(r1), r)
	}
	if fileExists(filepath.Join(dir, "r2")) {
		t.Errorf("the refused process created its replica")
	}
	b := startC(t, db, dbURI(db, "replica="+fileURL(r1)), nil)
	b.must("INSERT INTO t VALUES(2);")
	b.sync(20000)
	if r := b.close(); r.Code != 0 {
		t.Fatalf("second process with the same replica\n%s", r)
	}
	if r := a.close(); r.Code != 0 {
		t.Fatalf("owner exit\n%s", r)
	}
	verifyRestore(t, db, fileURL(r1))
}

// TestShortSessionsQuiet: sessions of the sqlite3 shell that write one row
// and exit. The capture's read transaction at open meets the closing
// connection's exclusive lock now and then; that is a moment's wait, not a
// failure ("capture failed: begin read transaction: database is locked"
// was logged in 7 of 12 sessions; found by an attack). Every row reaches
// the replica.
func TestShortSessionsQuiet(t *testing.T) {
	_, db := newDB(t)
	shellWrite(t, db, dbURI(db), []string{"PRAGMA journal_mode=WAL;", "CREATE TABLE t(x);"}, shellOpts{})
	const sessions = 12
	for i := range sessions {
		r := runShell(t, filepath.Dir(db), dbURI(db), fmt.Sprintf("INSERT INTO t VALUES(%d);", i), shellOpts{})
		if r.Code != 0 {
			t.Fatalf("session %d\n%s", i, r)
		}
		if strings.Contains(r.Stderr, "capture failed") {
			t.Errorf("session %d warned:\n%s", i, tail(r.Stderr, 1000))
		}
	}
	out := restore(t, fileURL(defaultReplica(db)))
	if got := sqlitePlain(t, out, "SELECT count(*) FROM t;"); got != fmt.Sprint(sessions) {
		t.Errorf("the replica holds %s rows, want %d", got, sessions)
	}
}

// TestCloseAfterPlainCommit: a process that only reads has the database
// open; a plain sqlite3 commits; the process's last connection closes
// (SQLite checkpoints the commit into the file and deletes the WAL) and
// opens again. The close's WAL deletion let the commit go unread, and its
// stat came after the checkpoint, so the reopen saw nothing changed:
// litestream_sync returned a TXID without the row and status said ok
// (found by an attack, 1 in 3 runs). The deletion now waits until the
// generation was read.
func TestCloseAfterPlainCommit(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER PRIMARY KEY); INSERT INTO t VALUES(0);")
	p.sync(20000)
	for i := 1; i <= 5; i++ {
		p.must(".open " + dbURI(db)) // a fresh connection that only reads
		p.must("SELECT count(*) FROM t;")
		sqlitePlain(t, db, fmt.Sprintf("INSERT INTO t VALUES(%d);", i))
		p.must(".open " + dbURI(db)) // the last close checkpoints and deletes the WAL
		txid := p.sync(20000)
		out := restore(t, fileURL(defaultReplica(db)), "-txid", strconv.FormatInt(txid, 10))
		if got := sqlitePlain(t, out, "SELECT max(x) FROM t;"); got != strconv.Itoa(i) {
			t.Errorf("round %d: litestream_sync returned %d, whose restore holds max %s", i, txid, got)
		}
	}
	closeAndVerify(t, p, db, 0)
}
