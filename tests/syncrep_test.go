package tests

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

var syncWriter = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(cClientPath), "syncwriter")
	out, err := exec.Command("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", bin,
		filepath.Join(repoRoot, "tests", "c", "syncwriter.c"), "-lsqlite3", "-lpthread").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gcc tests/c/syncwriter.c: %v\n%s", err, out)
	}
	return bin, nil
})

// syncWriterPath compiles tests/c/syncwriter.c once.
func syncWriterPath(tb testing.TB) string {
	tb.Helper()
	bin, err := syncWriter()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// acks is what a syncwriter run acknowledged: per thread id, the highest k
// whose INSERT returned (its commits are in order, so every k up to it too).
type acks map[int]int

// runSyncWriter starts syncwriter on uri with threads threads, tids from
// base, and kills it with SIGKILL delay after START. It returns the acks
// it printed before it died and its output.
func runSyncWriter(t *testing.T, dir, uri string, env []string, base, threads int, delay time.Duration) (acks, string) {
	t.Helper()
	cmd := exec.Command(syncWriterPath(t), extPath+".so", uri, strconv.Itoa(threads), "1000000", "30", strconv.Itoa(base))
	cmd.Dir = dir
	cmd.Env = childEnv(env)
	got := acks{}
	var out strings.Builder
	stderr := killAfterStart(t, cmd, delay, 40*time.Second, func(l string) bool {
		f := strings.Fields(l)
		switch {
		case len(f) == 1 && f[0] == "START":
			return true
		case len(f) == 4 && f[0] == "ACK":
			tid, _ := strconv.Atoi(f[1])
			k, _ := strconv.Atoi(f[2])
			got[tid] = max(got[tid], k)
			return false
		}
		out.WriteString(l + "\n")
		return false
	})
	if strings.Contains(out.String(), "ERR") {
		t.Fatalf("syncwriter failed\n%s\nstderr:\n%s", out.String(), tail(stderr, 3000))
	}
	return got, out.String() + stderr
}

// restoredRows restores the replica at url into a fresh file and returns,
// per thread id, how many rows it holds and the highest k; a prefix has
// count == max. A replica with no files yet (killed before its first
// upload) holds no rows.
func restoredRows(t *testing.T, env []string, replicaURL string) map[int][2]int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	r := runCmd(t, filepath.Dir(out), env, nil, ltxrestorePath, "-o", out, replicaURL)
	rows := map[int][2]int{}
	if r.Code != 0 && strings.Contains(r.Stderr, "replica has no ltx files") {
		return rows
	}
	if r.Code != 0 {
		t.Fatalf("ltxrestore %s\n%s", replicaURL, r)
	}
	if sqlitePlain(t, out, "SELECT count(*) FROM sqlite_schema WHERE name = 's';") == "0" {
		return rows
	}
	for _, l := range splitLines(sqlitePlain(t, out, "SELECT tid, count(*), max(k) FROM s GROUP BY tid;")) {
		f := strings.Split(l, "|")
		tid, _ := strconv.Atoi(f[0])
		n, _ := strconv.Atoi(f[1])
		m, _ := strconv.Atoi(f[2])
		rows[tid] = [2]int{n, m}
	}
	return rows
}

// TestSyncReplication (issue 13): a writer in replicate=sync mode is
// killed with SIGKILL at a random point, again and again, on one database
// (each round reopens it: reconcile, then more commits); after each kill
// the replica is restored and must hold every row whose INSERT returned.
// The same loop in async mode counts the acknowledged commits a kill loses
// there: not in the replica when the process died, so lost had the host
// died with it (the window sync closes; the next opener ships them from
// the local WAL and spool). Against a directory replica, a real
// MinIO, and a directory replica whose owner is another, idle process
// (the writer's commits wait through the shared state).
//
// SYNC_LOOPS sets the rounds per case (default 20); the figures go to the
// log as "SYNC-KILL".
func TestSyncReplication(t *testing.T) {
	loops := envCount(t, "SYNC_LOOPS", 20)
	srv := s3test.Start(t)
	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
	cases := []struct {
		name  string
		s3    bool
		owner bool // an idle process owns replication; the writer does not
	}{
		{name: "Directory"}, {name: "S3", s3: true}, {name: "OtherOwner", owner: true},
	}
	for _, tc := range cases {
		for _, mode := range []string{"sync", "async"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				seed := newSeed(t)
				rnd := rand.New(rand.NewPCG(seed, 2))
				dir, db := newDB(t)
				params := []string{"replicate=" + mode}
				replicaURL := fileURL(defaultReplica(db))
				var env []string
				if tc.s3 {
					bucket := srv.NewBucket(t)
					params = append(params, "replica=s3://"+bucket+"/db", "endpoint="+srv.Endpoint)
					replicaURL = "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
					env = creds
				}
				uri := dbURI(db, params...)
				if tc.owner {
					o := startC(t, db, dbURI(db), env)
					o.must("PRAGMA journal_mode=WAL;")
					defer o.close()
				}
				rounds := loops
				if mode == "async" {
					rounds = max(loops/2, 5)
				}
				var acked, lost, lostRounds int
				for i := 0; i < rounds; i++ {
					threads := 1 + rnd.IntN(4)
					delay := time.Duration(rnd.IntN(300)) * time.Millisecond
					got, out := runSyncWriter(t, dir, uri, env, 100*i, threads, delay)
					rows := restoredRows(t, env, replicaURL)
					roundLost := 0
					for tid, k := range got {
						acked += k
						n, m := rows[tid][0], rows[tid][1]
						if n != m {
							t.Fatalf("round %d: thread %d's rows in the restore are not a prefix: %d rows, highest k %d", i, tid, n, m)
						}
						if m < k {
							roundLost += k - m
						}
					}
					if roundLost > 0 {
						lost += roundLost
						lostRounds++
						if mode == "sync" {
							t.Fatalf("round %d (%d threads, killed %v after START): %d commits acknowledged by COMMIT are not in the replica (acked %v, restored %v)\n%s",
								i, threads, delay, roundLost, got, rows, tail(out, 3000))
						}
					}
				}
				t.Logf("SYNC-KILL case=%s mode=%s rounds=%d acknowledged=%d lost=%d rounds_with_loss=%d seed=%d", tc.name, mode, rounds, acked, lost, lostRounds, seed)
			})
		}
	}
}

// TestSyncTimeout (issue 13): with the store down, a replicate=sync
// commit returns after sync-timeout; then the database is degraded.
// on-timeout=degrade: later commits return at once (asynchronous), and once
// the store is back and the replica caught up they wait again.
// on-timeout=block: write transactions fail with SQLITE_BUSY, named in the
// log, while reads go on; once the replica caught up, writes work again.
// While a commit waits, another process writes: the wait holds no lock.
func TestSyncTimeout(t *testing.T) {
	for _, block := range []bool{false, true} {
		name := map[bool]string{false: "Degrade", true: "Block"}[block]
		t.Run(name, func(t *testing.T) {
			srv := s3test.Start(t) // its own server: the test stops it
			creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
			_, db := newDB(t)
			bucket := srv.NewBucket(t)
			params := []string{"replica=s3://" + bucket + "/db", "endpoint=" + srv.Endpoint, "replicate=sync", "sync-timeout=2s"}
			if block {
				params = append(params, "on-timeout=block")
			}
			p := startC(t, db, dbURI(db, params...), creds)
			p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
			timed := func(sql string) (time.Duration, string) {
				t0 := time.Now()
				_, e := p.exec(sql)
				return time.Since(t0), e
			}
			if d, e := timed("INSERT INTO t(v) VALUES('store up');"); e != "" || d > time.Second {
				t.Fatalf("a commit with the store up: %v after %v", e, d)
			}
			if st := p.status(); st.State() != "ok" || st.Int("replicated_txid") != st.Int("local_txid") || st.Int("sync_waits") < 1 {
				t.Fatalf("after a synchronous commit: status %s", st)
			}

			srv.Stop()
			type done struct {
				d time.Duration
				e string
			}
			waited := make(chan done, 1)
			go func() {
				d, e := timed("INSERT INTO t(v) VALUES('store down');")
				waited <- done{d, e}
			}()
			// Another process (asynchronous) writes while that commit waits.
			time.Sleep(300 * time.Millisecond)
			q := startC(t, db, dbURI(db, "replica=s3://"+bucket+"/db", "endpoint="+srv.Endpoint), append([]string{"LITESTREAM_EXIT_FLUSH_MS=0"}, creds...))
			t0 := time.Now()
			q.must("INSERT INTO t(v) VALUES('other process');")
			if d := time.Since(t0); d > time.Second {
				t.Errorf("another process's commit took %v while a replicate=sync commit waited", d)
			}
			select {
			case w := <-waited:
				t.Fatalf("the replicate=sync commit returned (%q after %v) before the other process's commit was made", w.e, w.d)
			default:
			}
			if r := q.close(); r.Code != 0 {
				t.Fatalf("other process\n%s", r)
			}
			if w := <-waited; w.e != "" || w.d < 1900*time.Millisecond || w.d > 8*time.Second {
				t.Fatalf("a commit with the store down: %q after %v, want it to return after sync-timeout=2s", w.e, w.d)
			}
			st := p.status()
			if st.State() != "degraded" || st.Int("sync_timeouts") != 1 || !strings.Contains(st.Str("reason"), "sync-timeout") {
				t.Fatalf("after a timed-out commit: status %s", st)
			}
			if !strings.Contains(p.stderr.String(), "replicate=sync: the replica did not confirm a commit within 2000 ms") {
				t.Errorf("the timeout is not in the log:\n%s", tail(p.stderr.String(), 2000))
			}
			if block {
				_, e := timed("INSERT INTO t(v) VALUES('refused');")
				if !strings.HasPrefix(e, "ERR 5 ") {
					t.Fatalf("a write while blocked: %q, want SQLITE_BUSY (ERR 5)", e)
				}
				if got := p.must("SELECT count(*) FROM t;"); len(got) != 1 || got[0] != "3" {
					t.Fatalf("a read while blocked: %v, want 3 rows", got)
				}
				if !strings.Contains(p.stderr.String(), "write refused (SQLITE_BUSY): on-timeout=block") {
					t.Errorf("the refusal is not in the log:\n%s", tail(p.stderr.String(), 2000))
				}
			} else if d, e := timed("INSERT INTO t(v) VALUES('degraded');"); e != "" || d > 500*time.Millisecond {
				t.Fatalf("a commit while degraded: %q after %v, want it at once (asynchronous)", e, d)
			}

			srv.Restart(t)
			// Once the replica holds the timed-out commit, the next one waits
			// again (block: is accepted again).
			deadline := time.Now().Add(60 * time.Second)
			for {
				_, e := p.exec("INSERT INTO t(v) VALUES('after');")
				if e == "" {
					break
				}
				if !block || !strings.HasPrefix(e, "ERR 5 ") || time.Now().After(deadline) {
					t.Fatalf("a write after the store came back: %q", e)
				}
				time.Sleep(200 * time.Millisecond)
			}
			st, ok := p.pollStatus(60*time.Second, func(st status) bool { return st.State() == "ok" })
			if !ok {
				t.Fatalf("not ok once the store is back: %s", st)
			}
			waits := st.Int("sync_waits")
			p.must("INSERT INTO t(v) VALUES('synchronous again');")
			if st := p.status(); st.State() != "ok" || st.Int("replicated_txid") != st.Int("local_txid") || st.Int("sync_waits") != waits+1 {
				t.Fatalf("a commit after the catch-up did not wait for the replica: status %s (sync_waits before %d)", st, waits)
			}
			if r := p.close(); r.Code != 0 {
				t.Fatalf("client exit\n%s", r)
			}
		})
	}
}

// TestSyncBenchSmoke runs tests/bench_sync.sh --smoke so the benchmark of
// docs/performance.md cannot rot: every row present, every writer
// committing.
func TestSyncBenchSmoke(t *testing.T) {
	r := runCmd(t, repoRoot, nil, nil, filepath.Join(repoRoot, "tests", "bench_sync.sh"), "--smoke")
	if r.Code != 0 {
		t.Fatalf("bench_sync.sh --smoke\n%s", r)
	}
	row := regexp.MustCompile(`(?m)^\| (\d+) \| (threads|processes) \| ([^|]+) \| ([^|]+) \| [\d.]+ \| [\d.]+ \| (\d+) \|$`)
	rows := row.FindAllStringSubmatch(r.Stdout, -1)
	if len(rows) != 15 { // 1 writer: 5 setups; 4 writers: 5 as threads, 5 as processes
		t.Errorf("%d rows, want 15\n%s", len(rows), r.Stdout)
	}
	for _, m := range rows {
		if m[5] == "0" {
			t.Errorf("no commits: %s", m[0])
		}
	}
	t.Logf("\n%s", r.Stdout)
}

// TestSyncCommitWithReaderOpen: a replicate=sync COMMIT made while another
// statement of the same connection is still reading waits too (SQLite
// keeps the transaction's read mark then: a wait at its release came only
// after COMMIT returned, and a kill -9 lost the commit, 5 of 5 in an
// attack); and so does one of a fork() child, whose shim waits through the
// shared state as any process's.
func TestSyncCommitWithReaderOpen(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"ReaderOpen", `
conn = connect(uri)
conn.execute("PRAGMA journal_mode=WAL").fetchall()
conn.execute("CREATE TABLE t(x)")
conn.execute("INSERT INTO t VALUES('a'), ('b')")
cur = conn.execute("SELECT x FROM t")
cur.fetchone()  # still reading
conn.execute("BEGIN")
conn.execute("INSERT INTO t VALUES('acked')")
conn.execute("COMMIT")
print("ACK", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
`},
		{"ForkChild", `
conn = connect(uri)
conn.execute("PRAGMA journal_mode=WAL").fetchall()
conn.execute("CREATE TABLE t(x)")
conn.execute("INSERT INTO t VALUES('a'), ('b')")
pid = os.fork()
if pid == 0:
    child = connect(uri)
    child.execute("INSERT INTO t VALUES('acked')")
    print("ACK", flush=True)
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
os.waitpid(pid, 0)
time.sleep(30)
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := newDB(t)
			script := "import os, signal, sys, time\nsys.path.insert(0, sys.argv[1])\nfrom client import connect, load_extension\n" +
				"load_extension(sys.argv[2])\nuri = sys.argv[3]\n" + tc.script
			r := runCmd(t, dir, nil, nil, python3Bin, "-c", script, filepath.Dir(pyClientPath), extPath, dbURI(db, "replicate=sync", "sync-timeout=60s"))
			if !strings.Contains(r.Stdout, "ACK") {
				t.Fatalf("no commit acknowledged\n%s", r)
			}
			out := filepath.Join(t.TempDir(), "out.db")
			if rr := runCmd(t, dir, nil, nil, ltxrestorePath, "-o", out, fileURL(defaultReplica(db))); rr.Code != 0 {
				t.Fatalf("restore\n%s", rr)
			}
			if got := sqlitePlain(t, out, "SELECT group_concat(x) FROM t;"); got != "a,b,acked" {
				t.Fatalf("restore holds %q, want a,b,acked: an acknowledged replicate=sync commit is not in the replica\n%s", got, r)
			}
		})
	}
}
