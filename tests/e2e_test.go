package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newDB returns a fresh database path in its own temp dir.
func newDB(t *testing.T) (dir, db string) {
	t.Helper()
	dir = t.TempDir()
	return dir, filepath.Join(dir, "app.db")
}

// defaultReplica is where the extension replicates db without replica= or
// LITESTREAM_REPLICA_URL.
func defaultReplica(db string) string { return db + "-replica" }

// TestWorkload runs a randomized workload through each client, syncs,
// restores and compares.
func TestWorkload(t *testing.T) {
	t.Run("Shell", func(t *testing.T) {
		_, db := newDB(t)
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 120)...)
		lines = append(lines, syncLine(60000), statusSQL)
		out := shellWrite(t, db, dbURI(db), lines, shellOpts{})
		txid := lastTXID(t, out)
		st := lastStatus(t, out)
		if txid <= 0 {
			t.Errorf("litestream_sync TXID=%d, want > 0", txid)
		}
		if got, want := st.State(), "ok"; got != want {
			t.Errorf("status state after sync=%q, want %q: %s", got, want, st)
		}
		if got := st.Int("replicated_txid"); got < txid {
			t.Errorf("status replicated_txid=%d after litestream_sync returned %d: %s", got, txid, st)
		}
		if got := st.Int("local_txid"); got < txid {
			t.Errorf("status local_txid=%d after litestream_sync returned %d: %s", got, txid, st)
		}
		if got := st.Int("pending_txns"); got != 0 {
			t.Errorf("status pending_txns=%d after sync, want 0: %s", got, st)
		}
		if !samePath(st.Str("db"), db) {
			t.Errorf("status db=%q, want %q", st.Str("db"), db)
		}
		if !fileExists(db + "-litestream") {
			t.Errorf("spool directory %s-litestream does not exist", db)
		}
		requireReplica(t, defaultReplica(db))
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("C", func(t *testing.T) {
		dir, db := newDB(t)
		rep := filepath.Join(dir, "rep")
		ignored := filepath.Join(dir, "env-replica")
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 120)...)
		lines = append(lines, syncLine(60000), statusSQL)
		// The URI parameter wins over the environment variable.
		out := clientWrite(t, false, db, dbURI(db, "replica="+fileURL(rep)), lines,
			[]string{"LITESTREAM_REPLICA_URL=" + fileURL(ignored)})
		if txid := lastTXID(t, out); txid <= 0 {
			t.Errorf("litestream_sync TXID=%d, want > 0", txid)
		}
		if st := lastStatus(t, out); st.State() != "ok" {
			t.Errorf("status state after sync=%q, want ok: %s", st.State(), st)
		}
		if n := replicaLTXFiles(t, ignored); len(n) != 0 {
			t.Errorf("LITESTREAM_REPLICA_URL replica got files %v although replica= was given", n)
		}
		if fileExists(defaultReplica(db)) {
			t.Errorf("default replica %s created although replica= was given", defaultReplica(db))
		}
		requireReplica(t, rep)
		verifyRestore(t, db, rep) // a plain path works as a URL too
	})

	t.Run("Python", func(t *testing.T) {
		dir, db := newDB(t)
		rep := filepath.Join(dir, "env-replica")
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 120)...)
		lines = append(lines, syncLine(60000), statusSQL)
		out := clientWrite(t, true, db, dbURI(db), lines, []string{"LITESTREAM_REPLICA_URL=" + rep})
		if txid := lastTXID(t, out); txid <= 0 {
			t.Errorf("litestream_sync TXID=%d, want > 0", txid)
		}
		if st := lastStatus(t, out); st.State() != "ok" {
			t.Errorf("status state after sync=%q, want ok: %s", st.State(), st)
		}
		requireReplica(t, rep)
		verifyRestore(t, db, fileURL(rep))
	})
}

// TestScenarios covers the situations a replicating VFS gets wrong.
func TestScenarios(t *testing.T) {
	t.Run("ExistingDatabase", func(t *testing.T) {
		for _, mode := range []string{"WAL", "DELETE"} {
			t.Run(mode, func(t *testing.T) {
				_, db := newDB(t)
				sqlitePlain(t, db, "PRAGMA journal_mode="+mode+"; CREATE TABLE pre(id INTEGER PRIMARY KEY, b BLOB, s TEXT); "+
					"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 700) "+
					"INSERT INTO pre SELECT i, randomblob(i*7), 'row '||i FROM c; CREATE INDEX pre_s ON pre(s);")
				lines := append([]string{"PRAGMA journal_mode=WAL;", "UPDATE pre SET s = s||'!' WHERE id % 3 = 0;"}, workload(newSeed(t), 60)...)
				lines = append(lines, syncLine(60000))
				if mode == "WAL" {
					shellWrite(t, db, dbURI(db), lines, shellOpts{})
				} else {
					clientWrite(t, false, db, dbURI(db), lines, nil)
				}
				verifyRestore(t, db, fileURL(defaultReplica(db)))
			})
		}
	})

	t.Run("GrowAndShrink", func(t *testing.T) {
		t.Run("Vacuum", func(t *testing.T) {
			_, db := newDB(t)
			grow := []string{"PRAGMA journal_mode=WAL;", "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);"}
			for i := 0; i < 4; i++ {
				grow = append(grow, "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500) "+
					"INSERT INTO big(b) SELECT randomblob(4000) FROM c; COMMIT;")
			}
			grow = append(grow, syncLine(60000))
			shellWrite(t, db, dbURI(db), grow, shellOpts{})
			verifyRestore(t, db, fileURL(defaultReplica(db)))
			before := pageCount(t, db)

			shellWrite(t, db, dbURI(db), []string{"DELETE FROM big WHERE id % 10 != 0;", "VACUUM;", syncLine(60000)}, shellOpts{})
			if after := pageCount(t, db); after >= before/2 {
				t.Fatalf("source did not shrink: page_count %d -> %d", before, after)
			}
			verifyRestore(t, db, fileURL(defaultReplica(db)))
		})
		for _, av := range []string{"FULL", "INCREMENTAL"} {
			t.Run("AutoVacuum"+av, func(t *testing.T) {
				_, db := newDB(t)
				lines := []string{"PRAGMA auto_vacuum=" + av + ";", "PRAGMA journal_mode=WAL;", "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);"}
				for i := 0; i < 4; i++ {
					lines = append(lines, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500) "+
						"INSERT INTO big(b) SELECT randomblob(2000) FROM c;")
				}
				lines = append(lines, syncLine(60000))
				shellWrite(t, db, dbURI(db), lines, shellOpts{})
				verifyRestore(t, db, fileURL(defaultReplica(db)))
				before := pageCount(t, db)

				shrink := []string{"DELETE FROM big WHERE id % 10 != 0;", "DELETE FROM big WHERE id > 1000;"}
				if av == "INCREMENTAL" {
					shrink = append(shrink, "PRAGMA incremental_vacuum;")
				}
				shellWrite(t, db, dbURI(db), append(shrink, syncLine(60000)), shellOpts{})
				if after := pageCount(t, db); after >= before/2 {
					t.Fatalf("source did not shrink: page_count %d -> %d", before, after)
				}
				verifyRestore(t, db, fileURL(defaultReplica(db)))
			})
		}
	})

	for _, size := range []int{512, 65536} {
		t.Run(fmt.Sprintf("PageSize%d", size), func(t *testing.T) {
			_, db := newDB(t)
			lines := append([]string{fmt.Sprintf("PRAGMA page_size=%d;", size), "PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 60)...)
			lines = append(lines, syncLine(60000))
			shellWrite(t, db, dbURI(db), lines, shellOpts{})
			if got := sqlitePlain(t, db, "PRAGMA page_size;"); got != strconv.Itoa(size) {
				t.Fatalf("source page_size=%s, want %d", got, size)
			}
			verifyRestore(t, db, fileURL(defaultReplica(db)))
		})
	}

	// CacheSpill: a tiny page cache makes SQLite write uncommitted frames to
	// the WAL mid-transaction, and ROLLBACK TO a savepoint then makes it
	// overwrite them (DESIGN §4.1: take frames as they stand at unlock).
	t.Run("CacheSpill", func(t *testing.T) {
		_, db := newDB(t)
		lines := append([]string{"PRAGMA journal_mode=WAL;", "PRAGMA cache_size=10;"}, workload(newSeed(t), 80)...)
		lines = append(lines, syncLine(60000))
		clientWrite(t, false, db, dbURI(db), lines, nil)
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	// SavepointAfterCacheSpill replays a fixed workload (found by CacheSpill,
	// minimized) whose last transaction spills the cache, then rolls back to a
	// savepoint before committing.
	t.Run("SavepointAfterCacheSpill", func(t *testing.T) {
		_, db := newDB(t)
		b, err := os.ReadFile(filepath.Join("testdata", "savepoint-spill", "workload.sql"))
		if err != nil {
			t.Fatal(err)
		}
		lines := append(splitLines(string(b)), syncLine(60000))
		clientWrite(t, false, db, dbURI(db), lines, nil)
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("LargeTransaction", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: skipping the 110 MB transaction")
		}
		_, db := newDB(t)
		lines := []string{
			"PRAGMA journal_mode=WAL;",
			"CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);",
			"BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 110) " +
				"INSERT INTO big SELECT i, randomblob(1048576) FROM c; COMMIT;",
			"INSERT INTO big VALUES(1000, 'after');",
			syncLine(300000),
		}
		start := time.Now()
		r := runShell(t, filepath.Dir(db), dbURI(db), strings.Join(lines, "\n"), shellOpts{})
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "DBFILE:"+db) {
			t.Fatalf("sqlite3 shell failed or did not open %s\n%s", db, r)
		}
		t.Logf("110 MB transaction: shell took %s, peak RSS %d MiB", time.Since(start).Round(time.Millisecond), r.MaxRSS/1024)
		if r.MaxRSS > 1<<20 { // KiB
			t.Errorf("sqlite3 shell peak RSS %d MiB for a 110 MB transaction, want < 1024 MiB", r.MaxRSS/1024)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("TenThousandTinyTransactions", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: skipping 10k transactions")
		}
		_, db := newDB(t)
		// The first snapshot covers whatever was committed when it was
		// taken; after it, each transaction gets its own TXID.
		lines := []string{"PRAGMA journal_mode=WAL;", "CREATE TABLE tiny(id INTEGER PRIMARY KEY, v BLOB);", syncLine(60000)}
		for i := 0; i < 10000; i++ {
			lines = append(lines, fmt.Sprintf("INSERT INTO tiny(v) VALUES(randomblob(%d));", 8+i%32))
		}
		lines = append(lines, syncLine(120000), statusSQL)
		start := time.Now()
		out := clientWrite(t, false, db, dbURI(db), lines, nil)
		t.Logf("10k transactions + sync: %s", time.Since(start).Round(time.Millisecond))
		var txids []int64
		for _, l := range out {
			if v, ok := strings.CutPrefix(l, "TXID:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("bad TXID line %q", l)
				}
				txids = append(txids, n)
			}
		}
		if len(txids) != 2 || txids[1]-txids[0] != 10000 {
			t.Errorf("litestream_sync TXIDs %v before and after 10000 transactions, want 10000 apart", txids)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("TwoConnectionsOneProcess", func(t *testing.T) {
		_, db := newDB(t)
		lines := []string{"@0 PRAGMA journal_mode=WAL;"}
		for i, l := range workload(newSeed(t), 100) {
			lines = append(lines, fmt.Sprintf("@%d %s", i%2, l))
		}
		lines = append(lines, "@1 "+syncLine(60000), "@0 "+syncLine(60000), "@1 "+statusSQL)
		out := clientWrite(t, true, db, dbURI(db), lines, nil)
		var txids []int64
		for _, l := range out {
			if v, ok := strings.CutPrefix(l, "TXID:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				txids = append(txids, n)
			}
		}
		if len(txids) != 2 || txids[0] <= 0 || txids[1] < txids[0] {
			t.Errorf("litestream_sync on the two connections returned %v, want two equal positive TXIDs", txids)
		}
		if st := lastStatus(t, out); st.State() != "ok" {
			t.Errorf("status state=%q, want ok: %s", st.State(), st)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("JournalModeWALAfterOpen", func(t *testing.T) {
		_, db := newDB(t)
		p := startC(t, db, dbURI(db), nil)
		p.must("CREATE TABLE a(id INTEGER PRIMARY KEY, s TEXT, b BLOB);")
		p.must("INSERT INTO a(s, b) VALUES('before wal', randomblob(5000)), ('x', randomblob(100));")
		if st := p.status(); st.State() != "not-replicating" {
			t.Errorf("status in rollback-journal mode: state=%q, want not-replicating: %s", st.State(), st)
		}
		if rows := p.must("PRAGMA journal_mode=WAL;"); len(rows) != 1 || rows[0] != "wal" {
			t.Fatalf("PRAGMA journal_mode=WAL returned %v", rows)
		}
		for _, l := range workload(newSeed(t), 40) {
			p.must(l)
		}
		txid := p.sync(60000)
		if st := p.status(); st.State() != "ok" {
			t.Errorf("status after switching to WAL and syncing: state=%q, want ok: %s", st.State(), st)
		}
		t.Logf("TXID %d", txid)
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("CloseReopen", func(t *testing.T) {
		_, db := newDB(t)
		seed := newSeed(t)
		shellWrite(t, db, dbURI(db), append([]string{"PRAGMA journal_mode=WAL;"}, workload(seed, 40)...), shellOpts{})
		clientWrite(t, false, db, dbURI(db), workload(seed+1, 40), nil)
		out := clientWrite(t, true, db, dbURI(db), append(workload(seed+2, 40), syncLine(60000)), nil)
		t.Logf("TXID after three processes: %d", lastTXID(t, out))
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	// KilledWriter: a writer killed with SIGKILL after its commits leaves a
	// hot WAL (and maybe an unshipped spool); the next process to open the
	// database must ship what was committed before syncing (DESIGN §4.8).
	t.Run("KilledWriter", func(t *testing.T) {
		_, db := newDB(t)
		seed := newSeed(t)
		p := startC(t, db, dbURI(db), nil)
		p.must("PRAGMA journal_mode=WAL;")
		for _, l := range workload(seed, 60) {
			p.must(l)
		}
		p.kill()
		out := clientWrite(t, true, db, dbURI(db), append(workload(seed+1, 20), syncLine(60000), statusSQL), nil)
		if st := lastStatus(t, out); st.State() != "ok" {
			t.Errorf("status after reopening and syncing: state=%q, want ok: %s", st.State(), st)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("CheckpointRacingWriter", func(t *testing.T) {
		_, db := newDB(t)
		seed := newSeed(t)
		txns := 1500
		if testing.Short() {
			txns = 300
		}
		r := runPy(t, filepath.Dir(db), dbURI(db), nil, nil, "ckpt-race", strconv.FormatUint(seed%(1<<62), 10), strconv.Itoa(txns), "120")
		if r.Code != 0 {
			t.Fatalf("python ckpt-race failed\n%s", r)
		}
		out := splitLines(r.Stdout)
		if !samePath(strings.TrimPrefix(firstLine(out), "OPENED "), db) {
			t.Fatalf("python client did not open %s\n%s", db, r)
		}
		nonempty := -1
		for _, l := range out {
			if strings.HasPrefix(l, "WROTE") || strings.HasPrefix(l, "CKPT") || strings.HasPrefix(l, "TXID") {
				t.Log(l)
			}
			if _, v, ok := strings.Cut(l, " nonempty="); ok && strings.HasPrefix(l, "CKPT ") {
				nonempty, _ = strconv.Atoi(v)
			}
		}
		if nonempty < 1 {
			t.Errorf("no checkpoint completed on a non-empty WAL while the writer ran (nonempty=%d): the race was not exercised", nonempty)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("JournalSizeLimitAndAutocheckpoint", func(t *testing.T) {
		_, db := newDB(t)
		lines := []string{"PRAGMA journal_mode=WAL;", "PRAGMA journal_size_limit=0;", "PRAGMA wal_autocheckpoint=10;"}
		lines = append(lines, workload(newSeed(t), 400)...)
		lines = append(lines, syncLine(60000))
		clientWrite(t, false, db, dbURI(db), lines, nil)
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("NotWALMode", func(t *testing.T) {
		_, db := newDB(t)
		p := startC(t, db, dbURI(db), nil)
		p.must("PRAGMA journal_mode=DELETE;")
		p.must("CREATE TABLE t(x); INSERT INTO t VALUES(1), (2);")
		p.must("INSERT INTO t VALUES(3);")
		st := p.status()
		if st.State() != "not-replicating" {
			t.Errorf("status in journal_mode=DELETE: state=%q, want not-replicating: %s", st.State(), st)
		}
		_, syncErr := p.exec(syncLine(1000))
		t.Logf("status %s; litestream_sync: %q", st, syncErr)
		r := p.close()
		if r.Code != 0 {
			t.Fatalf("C client did not exit cleanly\n%s", r)
		}
		if low := strings.ToLower(r.Stderr); !strings.Contains(low, "wal") && !strings.Contains(low, "journal") {
			t.Errorf("no warning about the journal mode on stderr:\n%s", tail(r.Stderr, 2000))
		}
		integrityCheck(t, db)
		if got := sqlitePlain(t, db, "SELECT count(*) FROM t;"); got != "3" {
			t.Errorf("count=%s, want 3", got)
		}
	})

	t.Run("LockingModeExclusive", func(t *testing.T) {
		_, db := newDB(t)
		p := startC(t, db, dbURI(db), nil)
		p.must("PRAGMA locking_mode=EXCLUSIVE;")
		p.must("PRAGMA journal_mode=WAL;")
		p.must("CREATE TABLE t(x); INSERT INTO t VALUES(1), (2);")
		p.must("INSERT INTO t VALUES(3);")
		st := p.status()
		if st.State() != "not-replicating" {
			t.Errorf("status with locking_mode=EXCLUSIVE: state=%q, want not-replicating: %s", st.State(), st)
		}
		_, syncErr := p.exec(syncLine(1000))
		t.Logf("status %s; litestream_sync: %q", st, syncErr)
		r := p.close()
		if r.Code != 0 {
			t.Fatalf("C client did not exit cleanly\n%s", r)
		}
		if low := strings.ToLower(r.Stderr); !strings.Contains(low, "exclusive") && !strings.Contains(low, "locking") {
			t.Errorf("no warning about the locking mode on stderr:\n%s", tail(r.Stderr, 2000))
		}
		integrityCheck(t, db)
		if got := sqlitePlain(t, db, "SELECT count(*) FROM t;"); got != "3" {
			t.Errorf("count=%s, want 3", got)
		}
	})

	t.Run("BadURL", func(t *testing.T) {
		for _, c := range []struct{ name, param, word string }{
			{"FTPReplica", "replica=ftp://x", "replica"},
			{"UnknownParameter", "bogus=1", "bogus"},
			{"BadPutRate", "max-puts-per-second=fast", "max-puts-per-second"},
			{"S3OptionOnFileReplica", "endpoint=http://127.0.0.1:1", "endpoint"},
			{"S3BadOption", "replica=s3://bucket/db&force-path-style=maybe", "force-path-style"},
		} {
			t.Run(c.name+"/Shell", func(t *testing.T) {
				dir, db := newDB(t)
				uri := dbURI(db, c.param)
				r := runShell(t, dir, uri, "", shellOpts{Log: true, NoBail: true})
				if r.Signal != "" {
					t.Fatalf("sqlite3 shell crashed\n%s", r)
				}
				if !strings.Contains(r.Stderr, "unable to open database file") {
					t.Errorf("shell stderr lacks %q\n%s", "unable to open database file", r)
				}
				if got := firstLine(splitLines(r.Stdout)); got != "DBFILE:" {
					t.Errorf("shell main database %q, want the in-memory fallback (DBFILE:)", got)
				}
				// The shell echoes the URI in its own error line; the
				// extension's log line must name the parameter by itself.
				if !logNames(r.Stderr, c.word, uri) {
					t.Errorf("no log line names %q\n%s", c.word, r)
				}
				requireNoDB(t, dir)
			})
			t.Run(c.name+"/C", func(t *testing.T) {
				dir, db := newDB(t)
				uri := dbURI(db, c.param)
				r := runC(t, dir, uri, nil, nil)
				if r.Code != 3 || !strings.HasPrefix(r.Stdout, "OPENFAIL 14 ") {
					t.Errorf("C client: want exit 3 and OPENFAIL 14 (SQLITE_CANTOPEN)\n%s", r)
				}
				if !logNames(r.Stderr, c.word, uri) {
					t.Errorf("no log line names %q\n%s", c.word, r)
				}
				requireNoDB(t, dir)
			})
			// Python's sqlite3 module installs no sqlite3_log callback: the
			// extension's own stderr line must name the parameter.
			t.Run(c.name+"/Python", func(t *testing.T) {
				dir, db := newDB(t)
				uri := dbURI(db, c.param)
				r := runPy(t, dir, uri, nil, nil)
				if r.Code != 3 || !strings.HasPrefix(r.Stdout, "OPENFAIL ") {
					t.Errorf("python client: want exit 3 and OPENFAIL\n%s", r)
				}
				if !strings.Contains(r.Stderr, "litestream: "+db+": ") || !logNames(r.Stderr, c.word, uri) {
					t.Errorf("no stderr line of the extension names %q\n%s", c.word, r)
				}
				requireNoDB(t, dir)
			})
		}
	})

	// UnwritableReplica: root ignores permission bits, but nobody can create
	// or write a directory where a regular file stands.
	t.Run("UnwritableReplica", func(t *testing.T) {
		// outage runs the unwritable part: commits succeed, status reaches
		// state error with last_error, litestream_sync times out with an SQL
		// error; then it calls repair and requires sync to catch up.
		outage := func(t *testing.T, p *cproc, seed uint64, repair func()) {
			for _, l := range workload(seed, 30) {
				p.must(l) // commits succeed although the replica can't be written
			}
			st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == "error" })
			if !ok {
				t.Errorf("status never reached state error with an unwritable replica (polled 30s): %s", st)
			} else if st.Str("last_error") == "" {
				t.Errorf("status state error but last_error empty: %s", st)
			}
			if _, e := p.exec(syncLine(500)); e == "" {
				t.Errorf("litestream_sync(500) succeeded with an unwritable replica, want an SQL error")
			}
			p.must("INSERT INTO w3(body) VALUES('written while the replica was down');")
			repair()
			txid := p.sync(60000)
			if st := p.status(); st.State() != "ok" {
				t.Errorf("status after the replica came back and sync: state=%q, want ok: %s", st.State(), st)
			}
			t.Logf("TXID after recovery %d", txid)
			if r := p.close(); r.Code != 0 {
				t.Fatalf("C client exit\n%s", r)
			}
		}

		t.Run("AtOpen", func(t *testing.T) {
			dir, db := newDB(t)
			block := filepath.Join(dir, "block")
			if err := os.WriteFile(block, []byte("not a directory\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			rep := filepath.Join(block, "replica")
			p := startC(t, db, dbURI(db, "replica="+fileURL(rep)), nil)
			p.must("PRAGMA journal_mode=WAL;")
			outage(t, p, newSeed(t), func() {
				if err := os.Remove(block); err != nil {
					t.Fatal(err)
				}
			})
			verifyRestore(t, db, fileURL(rep))
		})

		t.Run("AfterStart", func(t *testing.T) {
			dir, db := newDB(t)
			rep := filepath.Join(dir, "rep")
			seed := newSeed(t)
			p := startC(t, db, dbURI(db, "replica="+fileURL(rep)), nil)
			p.must("PRAGMA journal_mode=WAL;")
			for _, l := range workload(seed, 20) {
				p.must(l)
			}
			p.sync(60000)
			// Swap the replica directory for a file.
			if err := os.Rename(rep, rep+".away"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rep, []byte("not a directory\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			outage(t, p, seed+1, func() {
				if err := os.Remove(rep); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(rep+".away", rep); err != nil {
					t.Fatal(err)
				}
			})
			verifyRestore(t, db, fileURL(rep))
		})
	})

	t.Run("DoubleLoad", func(t *testing.T) {
		_, db := newDB(t)
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 40)...)
		lines = append(lines, syncLine(60000), statusSQL)
		out := shellWrite(t, db, dbURI(db), lines, shellOpts{Loads: 2})
		if st := lastStatus(t, out); st.State() != "ok" {
			t.Errorf("status state=%q, want ok: %s", st.State(), st)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("RestoreErrors", func(t *testing.T) {
		dir := t.TempDir()
		empty := filepath.Join(dir, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ name, url string }{
			{"MissingDir", filepath.Join(dir, "missing")},
			{"MissingDirURL", fileURL(filepath.Join(dir, "missing"))},
			{"EmptyDir", empty},
			{"EmptyDirURL", fileURL(empty)},
		} {
			t.Run(c.name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out.db")
				r := runCmd(t, dir, nil, nil, ltxrestorePath, "-o", out, c.url)
				requireRestoreFailure(t, r)
				if fileExists(out) {
					t.Errorf("ltxrestore left %s after failing", out)
				}
			})
		}

		t.Run("OutputExists", func(t *testing.T) {
			_, db := newDB(t)
			shellWrite(t, db, dbURI(db), append(append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 20)...), syncLine(60000)), shellOpts{})
			url := fileURL(defaultReplica(db))
			out := filepath.Join(t.TempDir(), "out.db")
			if err := os.WriteFile(out, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, filepath.Dir(out), nil, nil, ltxrestorePath, "-o", out, url)
			requireRestoreFailure(t, r)
			if b, err := os.ReadFile(out); err != nil || string(b) != "keep me" {
				t.Errorf("ltxrestore without -f changed %s: %q, %v", out, b, err)
			}
			if r := runCmd(t, filepath.Dir(out), nil, nil, ltxrestorePath, "-o", out, "-f", url); r.Code != 0 {
				t.Fatalf("ltxrestore -f failed\n%s", r)
			}
			compareDBs(t, db, out)

			out2 := filepath.Join(t.TempDir(), "sub.db")
			if r := runCmd(t, filepath.Dir(out2), nil, nil, ltxrestorePath, "restore", "-o", out2, url); r.Code != 0 {
				t.Fatalf("ltxrestore restore -o failed\n%s", r)
			}
			compareDBs(t, db, out2)
		})
	})

	t.Run("RestoreAtTXID", func(t *testing.T) {
		_, db := newDB(t)
		seed := newSeed(t)
		out := shellWrite(t, db, dbURI(db), append(append([]string{"PRAGMA journal_mode=WAL;"}, workload(seed, 40)...), syncLine(60000)), shellOpts{})
		t1 := lastTXID(t, out)
		h1 := dumpHash(t, db)
		out = shellWrite(t, db, dbURI(db), append(workload(seed+1, 40), syncLine(60000)), shellOpts{})
		t2 := lastTXID(t, out)
		if t2 <= t1 {
			t.Fatalf("TXID after more writes %d <= %d", t2, t1)
		}
		url := fileURL(defaultReplica(db))
		old := restore(t, url, "-txid", strconv.FormatInt(t1, 10))
		if got := dumpHash(t, old); got != h1 {
			t.Errorf("restore -txid %d: dump sha256 %s, want %s (the source at that TXID)", t1, got, h1)
		}
		integrityCheck(t, old)
		verifyRestore(t, db, url)
	})
}

// pageCount is PRAGMA page_count of db, opened without the extension.
func pageCount(t *testing.T, db string) int {
	t.Helper()
	n, err := strconv.Atoi(sqlitePlain(t, db, "PRAGMA page_count;"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// logNames reports whether a stderr line other than the shell's echo of uri
// mentions word.
func logNames(stderr, word, uri string) bool {
	for _, l := range splitLines(stderr) {
		if strings.Contains(l, uri) {
			continue
		}
		if strings.Contains(strings.ToLower(l), word) {
			return true
		}
	}
	return false
}

// requireNoDB fails if a failed open left app.db (or its WAL) in dir.
func requireNoDB(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"app.db", "app.db-wal", "app.db-journal", "app.db-litestream", "app.db-replica"} {
		if fileExists(filepath.Join(dir, name)) {
			t.Errorf("failed open created %s", name)
		}
	}
}

// requireRestoreFailure checks ltxrestore's failure contract: exit 1 and one
// stderr line "ltxrestore: <cause>".
func requireRestoreFailure(t *testing.T, r result) {
	t.Helper()
	if r.Code != 1 {
		t.Errorf("ltxrestore exit=%d, want 1\n%s", r.Code, r)
	}
	lines := splitLines(r.Stderr)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ltxrestore: ") || len(lines[0]) <= len("ltxrestore: ") {
		t.Errorf("ltxrestore stderr=%q, want one line \"ltxrestore: <cause>\"", r.Stderr)
	}
}

// TestMultiProcess covers writers in several processes (DESIGN §4.4): TXIDs
// must stay contiguous across processes, and a write made without the
// extension must be noticed (answered with a snapshot), never lost.
func TestMultiProcess(t *testing.T) {
	t.Run("TwoProcessesInTurn", func(t *testing.T) {
		_, db := newDB(t)
		p1 := startC(t, db, dbURI(db), nil)
		p1.must("PRAGMA journal_mode=WAL;")
		p2 := startC(t, db, dbURI(db), nil)
		for i, l := range workload(newSeed(t), 80) {
			if i%2 == 0 {
				p1.must(l)
			} else {
				p2.must(l)
			}
		}
		// Only one process replicates a database; the other's litestream_sync
		// may refuse, but the replicating process must ship its commits too.
		rows, e := p2.exec(syncLine(60000))
		t.Logf("litestream_sync in process 2: %v %s", rows, e)
		t.Logf("litestream_sync in process 1: %d", p1.sync(60000))
		for i, p := range []*cproc{p1, p2} {
			if r := p.close(); r.Code != 0 {
				t.Fatalf("C client %d exit\n%s", i+1, r)
			}
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	// TakeOver: the second process waits for the replication lock and
	// replicates once the first one is gone, with no gap.
	t.Run("TakeOver", func(t *testing.T) {
		_, db := newDB(t)
		seed := newSeed(t)
		lines := workload(seed, 40)
		p1 := startC(t, db, dbURI(db), nil)
		p1.must("PRAGMA journal_mode=WAL;")
		p2 := startC(t, db, dbURI(db), nil)
		for _, l := range lines[:len(lines)/2] {
			p2.must(l)
		}
		pid1, pid2 := int64(p1.cmd.Process.Pid), int64(p2.cmd.Process.Pid)
		if st := p2.status(); st.Int("owner_pid") != pid1 {
			t.Fatalf("second process: owner_pid=%d while the first (pid %d) replicates: %s", st.Int("owner_pid"), pid1, st)
		}
		p1.sync(60000)
		if r := p1.close(); r.Code != 0 {
			t.Fatalf("C client 1 exit\n%s", r)
		}
		st, ok := p2.pollStatus(30*time.Second, func(st status) bool { return st.Int("owner_pid") == pid2 && st.State() != "starting" })
		if !ok {
			t.Fatalf("second process did not take over after the first exited: %s", st)
		}
		for _, l := range lines[len(lines)/2:] {
			p2.must(l)
		}
		t.Logf("litestream_sync in process 2 after take-over: %d", p2.sync(60000))
		if r := p2.close(); r.Code != 0 {
			t.Fatalf("C client 2 exit\n%s", r)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})

	t.Run("WriterWithoutExtension", func(t *testing.T) {
		_, db := newDB(t)
		seed := newSeed(t)
		shellWrite(t, db, dbURI(db), append(append([]string{"PRAGMA journal_mode=WAL;"}, workload(seed, 30)...), syncLine(60000)), shellOpts{})
		sqlitePlain(t, db, "INSERT INTO w3(body) VALUES('written without the extension'); UPDATE w1 SET n = -n WHERE id % 2 = 0;")
		out := shellWrite(t, db, dbURI(db), append(workload(seed+1, 30), syncLine(60000), statusSQL), shellOpts{})
		if st := lastStatus(t, out); st.State() != "ok" {
			t.Errorf("status after syncing: state=%q, want ok: %s", st.State(), st)
		}
		verifyRestore(t, db, fileURL(defaultReplica(db)))
	})
}

// TestFork: a process that loaded the extension forks; the child writes
// through the VFS and exits (DESIGN §4.10: the child's Go runtime is
// unusable, the shim must fall back to pass-through); nothing hangs, and the
// parent's replica ends up equal to the database, child's row included.
func TestFork(t *testing.T) {
	_, db := newDB(t)
	seed := newSeed(t)
	r := runPy(t, filepath.Dir(db), dbURI(db), nil, nil, "fork", strconv.FormatUint(seed%(1<<62), 10))
	out := splitLines(r.Stdout)
	for _, l := range out {
		if strings.HasPrefix(l, "CHILD") || strings.HasPrefix(l, "TXID") {
			t.Log(l)
		}
	}
	if r.Code != 0 {
		t.Fatalf("python fork client failed\n%s", r)
	}
	if !strings.Contains(r.Stdout, "\nCHILD 0\n") {
		t.Fatalf("forked child did not exit 0 within 30s\n%s", r)
	}
	if got := sqlitePlain(t, db, "SELECT count(*) FROM forked WHERE who = 'child';"); got != "1" {
		t.Errorf("child's row count=%s, want 1", got)
	}
	verifyRestore(t, db, fileURL(defaultReplica(db)))
}
