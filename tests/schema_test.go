package tests

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Schema-level changes of issue 10: a connection of the replicating
// process changes what the database file is (journal mode, page size,
// WAL size limit). Each is replicated or clearly reported; the restore
// equals the source once the database is back in WAL mode.

// insertRows is one statement inserting n rows of about size bytes into t.
func insertRows(table string, n, size int) string {
	var b strings.Builder
	b.WriteString("BEGIN;")
	for i := 0; i < n; i++ {
		b.WriteString("INSERT INTO " + table + "(v) VALUES(randomblob(" + strconv.Itoa(size) + "));")
	}
	b.WriteString("COMMIT;")
	return b.String()
}

// TestJournalModeAwayAndBack: journal_mode=DELETE in the replicating
// process, writes in rollback mode, then WAL again. While the database is
// not in WAL mode status names the reason and litestream_sync fails
// (nothing it confirmed would be in the replica); back in WAL mode one
// snapshot takes the rollback-mode writes and the restore equals the
// source.
func TestJournalModeAwayAndBack(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE j(id INTEGER PRIMARY KEY, v BLOB);")
	p.must(insertRows("j", 50, 500))
	p.sync(20000)
	if got := p.must("PRAGMA journal_mode=DELETE;"); len(got) != 1 || got[0] != "delete" {
		t.Fatalf("journal_mode=DELETE: %q", got)
	}
	p.must(insertRows("j", 50, 500))
	st, ok := p.pollStatus(10*time.Second, func(st status) bool { return strings.Contains(st.Str("reason"), "journal_mode") })
	if !ok {
		t.Fatalf("status in rollback mode does not say why nothing replicates: %s", st)
	}
	if st.State() == "ok" {
		t.Errorf("status in rollback mode is ok: %s", st)
	}
	if _, e := p.exec(syncLine(2000)); e == "" || !strings.Contains(e, "journal_mode") {
		t.Errorf("litestream_sync in rollback mode: want an error naming journal_mode, got %q", e)
	}
	p.must("PRAGMA journal_mode=WAL;")
	p.must(insertRows("j", 50, 500))
	p.sync(20000)
	if st := p.status(); st.State() != "ok" {
		t.Errorf("status back in WAL mode: %s", st)
	}
	// Two snapshots: the first, and one after the database came back to
	// WAL mode.
	closeAndVerify(t, p, db, 2)
}

// TestPageSizeChange: the page size changed by VACUUM (which SQLite allows
// only outside WAL mode) and WAL mode again: the replica takes the new page
// size with a snapshot; the restore has it.
func TestPageSizeChange(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE g(id INTEGER PRIMARY KEY, v BLOB);")
	p.must(insertRows("g", 200, 700))
	p.sync(20000)
	p.must("PRAGMA journal_mode=DELETE; PRAGMA page_size=8192; VACUUM; PRAGMA journal_mode=WAL;")
	if got := p.must("PRAGMA page_size;"); len(got) != 1 || got[0] != "8192" {
		t.Fatalf("page_size after VACUUM: %q", got)
	}
	p.must(insertRows("g", 200, 700))
	p.sync(20000)
	// A VACUUM in WAL mode (page size unchanged) is one more transaction.
	p.must("DELETE FROM g WHERE id % 2 = 0; VACUUM;")
	p.sync(20000)
	if r := p.close(); r.Code != 0 {
		t.Fatalf("client exit\n%s", r)
	}
	out := verifyRestore(t, db, fileURL(defaultReplica(db)))
	if got := sqlitePlain(t, out, "PRAGMA page_size;"); got != "8192" {
		t.Errorf("restored page_size %s, want 8192", got)
	}
}

// TestJournalSizeLimitZero: journal_size_limit=0 truncates the WAL to
// nothing at each reset, and a small wal_autocheckpoint makes that happen
// every few commits. Each truncation waits at its gate for the capture:
// one snapshot in all.
func TestJournalSizeLimitZero(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; PRAGMA journal_size_limit=0; PRAGMA wal_autocheckpoint=8; CREATE TABLE z(id INTEGER PRIMARY KEY, v BLOB);")
	for i := 0; i < 400; i++ {
		p.must("INSERT INTO z(v) VALUES(randomblob(1500));")
	}
	p.sync(20000)
	closeAndVerify(t, p, db, 1)
}

// closeAndVerify closes the client, requires exit 0, no warning of a
// snapshot if snapshots is 1 (the first), a restore equal to db and that
// many snapshots in its default replica (0: not counted).
func closeAndVerify(t *testing.T, p *cproc, db string, snapshots int) {
	t.Helper()
	r := p.close()
	if r.Code != 0 {
		t.Fatalf("client exit\n%s", r)
	}
	if snapshots == 1 && strings.Contains(r.Stderr, "snapshot needed") {
		t.Errorf("the client warned of a snapshot:\n%s", tail(r.Stderr, 2000))
	}
	verifyRestore(t, db, fileURL(defaultReplica(db)))
	if n := len(snapshotFiles(t, defaultReplica(db))); snapshots > 0 && n != snapshots {
		t.Errorf("%d snapshots, want %d\nclient stderr:\n%s", n, snapshots, tail(r.Stderr, 3000))
	}
}

// mountTmpfs mounts a tmpfs of size bytes at dir (created if missing) for
// the test; the test is skipped, saying why, where mounts are not allowed.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a full disk needs a small tmpfs, and mount is not allowed here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// resizeTmpfs changes the size of the tmpfs mounted at dir.
func resizeTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+strconv.Itoa(size), dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v: %s", dir, err, out)
	}
}

// TestStateDirFull: the state directory (spool, lock, shared state,
// position) on a 1 MiB tmpfs that the spool fills. The application's
// commits never fail and the host lives; status says error naming the full
// disk and litestream_sync fails; the failing capture is retried with a
// backoff (not at every commit) and warned of once; once there is room
// again the next capture snapshots and the replica equals the source.
func TestStateDirFull(t *testing.T) {
	_, db := newDB(t)
	state := db + "-litestream"
	mountTmpfs(t, state, 1<<20)
	p := startC(t, db, dbURI(db), nil)
	p.fileWarningsExpected = true
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE f(id INTEGER PRIMARY KEY, v BLOB);")
	p.must(insertRows("f", 10, 1000))
	p.sync(20000)
	// 4 MB of incompressible rows in 40 transactions: the spool cannot
	// hold them.
	for i := 0; i < 40; i++ {
		p.must(insertRows("f", 100, 1000))
	}
	st, ok := p.pollStatus(10*time.Second, func(st status) bool { return st.State() != "ok" && st.State() != "behind" })
	if !ok || !strings.Contains(st.Str("last_error"), "no space left on device") {
		t.Errorf("status with a full state directory: want an error naming the full disk, got %s", st)
	}
	t.Logf("status with a full state directory: %s", st)
	if _, e := p.exec(syncLine(2000)); e == "" {
		t.Errorf("litestream_sync with a full state directory succeeded")
	} else {
		t.Logf("litestream_sync: %s", e)
	}
	resizeTmpfs(t, state, 64<<20)
	p.must(insertRows("f", 10, 1000))
	txid := p.sync(30000)
	if st := p.status(); st.State() != "ok" || st.Int("replicated_txid") != txid {
		t.Errorf("status once there is room: %s (sync returned %d)", st, txid)
	}
	r := p.close()
	if r.Code != 0 {
		t.Fatalf("client exit\n%s", r)
	}
	// Each failed try was a warning and a new snapshot attempt, at every
	// commit (15 in this test before the backoff).
	if n := strings.Count(r.Stderr, "capture failed"); n > 2 {
		t.Errorf("%d capture-failed warnings for one full disk, want at most 2:\n%s", n, tail(r.Stderr, 3000))
	}
	verifyRestore(t, db, fileURL(defaultReplica(db)))
}

// TestPlainWriterRollbackMode: a writer without the extension switches the
// database to rollback-journal mode while no extension process has it
// open and writes. The next extension process says why it cannot
// replicate (status reason, litestream_sync fails); once it is WAL again,
// a snapshot takes every row. The same with the plain writer switching
// back to WAL itself before it leaves: the next opener notices the change
// and snapshots.
func TestPlainWriterRollbackMode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plain string // what the plain writer runs
		stays bool   // the database is left in rollback mode
	}{
		{"LeftInRollbackMode", "PRAGMA journal_mode=DELETE; " + insertRows("r", 50, 300), true},
		{"BackToWAL", "PRAGMA journal_mode=DELETE; " + insertRows("r", 50, 300) + " PRAGMA journal_mode=WAL; " + insertRows("r", 10, 300), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, db := newDB(t)
			p := startC(t, db, dbURI(db), nil)
			p.must("PRAGMA journal_mode=WAL; CREATE TABLE r(id INTEGER PRIMARY KEY, v BLOB);")
			p.must(insertRows("r", 20, 300))
			p.sync(20000)
			if r := p.close(); r.Code != 0 {
				t.Fatalf("first writer\n%s", r)
			}
			sqlitePlain(t, db, tc.plain)
			p = startC(t, db, dbURI(db), nil)
			if tc.stays {
				st, ok := p.pollStatus(10*time.Second, func(st status) bool { return strings.Contains(st.Str("reason"), "journal_mode") })
				if !ok {
					t.Fatalf("status of a database left in rollback mode: %s", st)
				}
				if _, e := p.exec(syncLine(2000)); e == "" {
					t.Errorf("litestream_sync on a database in rollback mode succeeded")
				}
				p.must("PRAGMA journal_mode=WAL;")
			}
			p.must(insertRows("r", 5, 300))
			p.sync(20000)
			closeAndVerify(t, p, db, 2)
		})
	}
}

// TestForeignWriterStatus: a writer without the extension commits while
// the owner idles. The owner's next litestream_status() is not "ok" (it
// was, with the row in no replica: found by the attack) and wakes the
// capture; soon it is ok with the row in the replica, foreign_txns counts
// it and a warning says what happened.
func TestForeignWriterStatus(t *testing.T) {
	_, db := newDB(t)
	p := startC(t, db, dbURI(db), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE f(id INTEGER PRIMARY KEY, v TEXT);")
	p.must("INSERT INTO f(v) VALUES('owner');")
	p.sync(20000)
	// Right after a sync a step may still be due (the WAL changed since
	// the last one began: behind, briefly).
	before, ok := p.pollStatus(10*time.Second, func(st status) bool { return st.State() == "ok" })
	if !ok {
		t.Fatalf("status before: %s", before)
	}
	sqlitePlain(t, db, "INSERT INTO f(v) VALUES('plain');")
	// "ok" is the truth only if a step has shipped the commit already.
	if st := p.status(); st.State() == "ok" && st.Int("replicated_txid") <= before.Int("replicated_txid") {
		t.Errorf("status right after a plain writer's commit is ok: %s", st)
	}
	// foreign_txns is a count of transactions no shim announced, matched
	// by counts, not one by one: announcements racing the steps can shift
	// one between them.
	st, ok := p.pollStatus(10*time.Second, func(st status) bool { return st.State() == "ok" && st.Int("foreign_txns") >= 1 })
	if !ok {
		t.Fatalf("status never ok again with foreign_txns counted: %s", st)
	}
	out := restore(t, fileURL(defaultReplica(db)))
	if got := sqlitePlain(t, out, "SELECT group_concat(v) FROM f;"); got != "owner,plain" {
		t.Errorf("the replica holds %q, want owner,plain", got)
	}
	r := p.close()
	if !strings.Contains(r.Stderr, "writer without the extension") {
		t.Errorf("no warning of the foreign writer:\n%s", tail(r.Stderr, 2000))
	}
}
