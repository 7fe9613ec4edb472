package tests

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/litestream-vfs/litestream_vfs/internal/config"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// TestS3 replicates through each real client to a real MinIO server and
// restores from it (issue 4's vertical slice). Credentials come from the
// environment, as in production.
func TestS3(t *testing.T) {
	srv := s3test.Start(t)
	creds := []string{
		"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey,
		"LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey,
	}
	// s3URI is the database URI with the replica options as URI parameters;
	// s3URL is the same replica as a plain URL (for ltxrestore).
	s3URI := func(db, bucket string) string {
		return dbURI(db, "replica=s3://"+bucket+"/db", "endpoint="+srv.Endpoint)
	}
	s3URL := func(bucket string) string {
		return "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
	}
	restoreS3 := func(t *testing.T, db, bucket string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "restored.db")
		r := runCmd(t, filepath.Dir(out), creds, nil, ltxrestorePath, "-o", out, s3URL(bucket))
		if r.Code != 0 {
			t.Fatalf("ltxrestore from %s failed\n%s", s3URL(bucket), r)
		}
		compareDBs(t, db, out)
	}

	for _, client := range []string{"Shell", "C", "Python"} {
		t.Run(client, func(t *testing.T) {
			_, db := newDB(t)
			bucket := srv.NewBucket(t)
			lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 60)...)
			lines = append(lines, syncLine(60000), statusSQL)
			// Debug logs, as JSON, to a file: every line a JSON object of
			// the extension's, none with the secret.
			logFile := filepath.Join(t.TempDir(), "litestream.log")
			env := append([]string{"LITESTREAM_LOG_LEVEL=debug", "LITESTREAM_LOG_FORMAT=json", "LITESTREAM_LOG_FILE=" + logFile}, creds...)
			var out []string
			switch client {
			case "Shell":
				out = shellWrite(t, db, s3URI(db, bucket), lines, shellOpts{Env: env})
			default:
				out = clientWrite(t, client == "Python", db, s3URI(db, bucket), lines, env)
			}
			checkJSONLog(t, logFile, srv.SecretKey)
			st := lastStatus(t, out)
			if st.State() != "ok" || !strings.HasPrefix(st.Str("replica"), "s3://"+bucket+"/db") {
				t.Errorf("status after sync: %s", st)
			}
			if strings.Contains(st.String(), srv.SecretKey) {
				t.Errorf("status shows the secret key: %s", st)
			}
			restoreS3(t, db, bucket)
		})
	}

	// Compaction on S3: levels under <prefix>/<level %04x>/, level-0
	// objects deleted (RemoveObjects) once level 1 covers them, a snapshot
	// built from the bucket's files and the first one deleted by
	// retention, the restore equal to the source.
	t.Run("Compaction", func(t *testing.T) {
		_, db := newDB(t)
		bucket := srv.NewBucket(t)
		p := startC(t, db, s3URI(db, bucket)+"&compaction=1s,3s&l0-retention=1s&snapshot-interval=2s&retention=3s&max-puts-per-second=0", creds)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE c(id INTEGER PRIMARY KEY, v BLOB);")
		for i := 0; i < 40; i++ {
			p.must("INSERT INTO c(v) VALUES(randomblob(3000));")
			p.sync(10000)
			time.Sleep(100 * time.Millisecond)
		}
		mc := srv.MinioClient(t)
		count := func(level string) int {
			n := 0
			for o := range mc.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: "db/" + level + "/"}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				n++
			}
			return n
		}
		// Settled: no level-0 object left, level 2 written, and the
		// owner's bookkeeping agrees with the bucket.
		first := "db/0009/" + "0000000000000001-0000000000000001.ltx"
		exists := func(key string) bool {
			_, err := mc.StatObject(t.Context(), bucket, key, minio.StatObjectOptions{})
			return err == nil
		}
		st, ok := p.pollStatus(20*time.Second, func(st status) bool {
			return count("0000") == 0 && count("0002") > 0 && !exists(first) &&
				st.Int("replica_files") == int64(count("0001")+count("0002")+count("0009"))
		})
		if !ok {
			t.Fatalf("S3 compaction did not settle: objects at levels 0, 1, 2, 9: %d %d %d %d (first snapshot still there: %v); status %s", count("0000"), count("0001"), count("0002"), count("0009"), exists(first), st)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("client exit\n%s", r)
		}
		restoreS3(t, db, bucket)
	})

	// The default PUT budget (issue 12): a steady 50 txn/s ships about
	// one object a second, as Litestream's one sync a second does (the
	// cap was 10 a second: 120 objects in 12 s), yet a commit after a
	// quiet second reaches the store at once, without litestream_sync.
	t.Run("PutBudget", func(t *testing.T) {
		_, db := newDB(t)
		bucket := srv.NewBucket(t)
		p := startC(t, db, s3URI(db, bucket), creds)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
		p.sync(10000)
		objects := func() int {
			n := 0
			for o := range srv.MinioClient(t).ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: "db/", Recursive: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				n++
			}
			return n
		}
		before := objects()
		const seconds = 12
		start := time.Now()
		for i := 0; time.Since(start) < seconds*time.Second && i < 50*seconds; i++ {
			p.must(fmt.Sprintf("INSERT INTO t(v) VALUES('row %d');", i))
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
		}
		elapsed := time.Since(start)
		p.sync(10000)
		// The burst (10, less what the setup used) + 1 a second + the sync.
		puts := objects() - before
		if limit := config.DefaultPutBurst + int(elapsed.Seconds()*config.DefaultS3PutRate) + 1; puts > limit || puts < seconds/2 {
			t.Errorf("%d objects for %v at 50 txn/s with the default policy, want %d to %d", puts, elapsed, seconds/2, limit)
		}
		// A quiet spell refills the budget. The sync above may have gone on
		// a credit of one PUT, and a compaction in the spell debits one per
		// level it writes (level 1, and level 2 on its boundary): from -3 at
		// worst, 4 s refill it to at least one PUT (1.5 s left it short).
		time.Sleep(4 * time.Second)
		p.must("INSERT INTO t(v) VALUES('after a quiet spell');")
		sent := time.Now()
		st, ok := p.pollStatus(5*time.Second, func(st status) bool {
			return st.Int("replicated_txid") >= st.Int("local_txid")
		})
		if lag := time.Since(sent); !ok || lag > 500*time.Millisecond {
			t.Errorf("a commit after a quiet spell reached the store after %v, want at once; status %s", lag, st)
		}
		t.Logf("%d objects in %v at 50 txn/s; a commit after a quiet spell: in the store after %v", puts, elapsed.Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
		if r := p.close(); r.Code != 0 {
			t.Fatalf("client exit\n%s", r)
		}
		restoreS3(t, db, bucket)
	})

	t.Run("NestedURL", func(t *testing.T) {
		_, db := newDB(t)
		bucket := srv.NewBucket(t)
		nested := "replica=" + url.QueryEscape("s3://"+bucket+"/db?endpoint="+srv.Endpoint+"&force-path-style=true")
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 20)...)
		shellWrite(t, db, dbURI(db, nested), append(lines, syncLine(60000)), shellOpts{Env: creds})
		restoreS3(t, db, bucket)
	})

	// Outage: the store goes away in the middle of a write workload. Commits
	// keep succeeding, the status shows it, and the replica catches up when
	// the store is back. With a small spool bound the spool overflows,
	// the state is needs-snapshot, and a snapshot closes the gap.
	for _, tc := range []struct {
		name     string
		params   []string
		overflow bool
	}{
		{"Outage", nil, false},
		{"OutageSpoolOverflow", []string{"spool-max-bytes=65536"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := s3test.Start(t) // its own server: this test stops it
			creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
			_, db := newDB(t)
			bucket := srv.NewBucket(t)
			params := append([]string{"replica=s3://" + bucket + "/db", "endpoint=" + srv.Endpoint}, tc.params...)
			p := startC(t, db, dbURI(db, params...), creds)
			p.must("PRAGMA journal_mode=WAL;")
			lines := workload(newSeed(t), 120)
			for _, l := range lines[:40] {
				p.must(l)
			}
			p.sync(60000)
			srv.Stop()
			for _, l := range lines[40:100] {
				p.must(l) // commits succeed while the store is down
			}
			want := "error"
			if tc.overflow {
				want = "needs-snapshot"
			}
			st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == want })
			if !ok {
				t.Fatalf("status during the outage never reached %s: %s", want, st)
			}
			if st.Str("last_error") == "" {
				t.Errorf("no last_error during the outage: %s", st)
			}
			// Counted by kind: a stopped MinIO refuses the connection.
			if kinds, _ := st["upload_errors"].(map[string]any); kinds["network"] == nil {
				t.Errorf("upload_errors during the outage lack network errors: %s", st)
			}
			// The bound leaves out the newest snapshot (which a spool must
			// be able to hold whole): at most the database's size more.
			if limit := 65536 + int64(pageCount(t, db))*4096; tc.overflow && st.Int("pending_bytes") > limit {
				t.Errorf("spool holds %d bytes, past its 64 KiB bound plus a snapshot (%d): %s", st.Int("pending_bytes"), limit, st)
			}
			srv.Restart(t)
			for _, l := range lines[100:] {
				p.must(l)
			}
			p.sync(60000)
			// With a spool bound far below the database size, commits made
			// before the first upload after the outage can overflow it
			// again: a snapshot may still be on its way when the synced
			// TXID is in the replica. The state must reach ok.
			if st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == "ok" }); !ok {
				t.Errorf("status after the store came back (polled 30 s): %s", st)
			}
			if r := p.close(); r.Code != 0 {
				t.Fatalf("C client exit\n%s", r)
			}
			out := filepath.Join(t.TempDir(), "restored.db")
			u := "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
			if r := runCmd(t, filepath.Dir(out), creds, nil, ltxrestorePath, "-o", out, u); r.Code != 0 {
				t.Fatalf("ltxrestore from %s failed\n%s", u, r)
			}
			compareDBs(t, db, out)
		})
	}

	// StoreDownAtBoot (issue 9, item 4): a process that opens the database
	// while the store is down spools from its first commit (it used to
	// fail every capture step at "open replicator: list replica"); its
	// commits, and those of the next process, reach the replica as LTX
	// history once the store is back, with no new snapshot, and a fresh
	// process's litestream_sync returns the TXID the replica then holds.
	t.Run("StoreDownAtBoot", func(t *testing.T) {
		srv := s3test.Start(t) // its own server: this test stops it
		creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
		_, db := newDB(t)
		bucket := srv.NewBucket(t)
		uri := dbURI(db, "replica=s3://"+bucket+"/db", "endpoint="+srv.Endpoint)
		lines := workload(newSeed(t), 90)
		shellWrite(t, db, uri, append(append([]string{"PRAGMA journal_mode=WAL;"}, lines[:30]...), syncLine(60000)), shellOpts{Env: creds})
		srv.Stop()
		flush := append([]string{"LITESTREAM_EXIT_FLUSH_MS=200"}, creds...)
		p := startC(t, db, uri, flush)
		for _, l := range lines[30:60] {
			p.must(l)
		}
		st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == "error" })
		if !ok || !strings.Contains(st.Str("last_error"), "connect") {
			t.Errorf("status with the store down since open: want error naming the connection: %s", st)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
		if segs, _ := filepath.Glob(db + "-litestream/spool/*.seg"); len(segs) == 0 {
			t.Fatalf("nothing spooled while the store was down")
		}
		p = startC(t, db, uri, creds) // still down
		for _, l := range lines[60:] {
			p.must(l)
		}
		srv.Restart(t)
		txid := lastTXID(t, shellWrite(t, db, uri, []string{syncLine(60000)}, shellOpts{Env: creds}))
		if st := p.status(); st.Int("replicated_txid") < txid || st.Int("local_txid") != txid {
			t.Errorf("after the store came back: fresh process synced %d, owner says %s", txid, st)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
		u := "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
		r := runCmd(t, t.TempDir(), creds, nil, ltxrestorePath, "ls", "-json", u)
		if r.Code != 0 {
			t.Fatalf("ltxrestore ls\n%s", r)
		}
		// History: level-0 files chain from TXID 2 to the end. (A count of
		// snapshots said the same until compaction could build one from
		// the replica's files once the backlog passes snapshot-max-ratio:
		// 2 in 3 of 15 loaded runs.)
		var ls struct {
			Files []struct {
				Level   int   `json:"level"`
				MinTXID int64 `json:"min_txid"`
				MaxTXID int64 `json:"max_txid"`
			} `json:"files"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &ls); err != nil {
			t.Fatalf("decode ls -json: %v\n%s", err, r.Stdout)
		}
		next := int64(2)
		var ranges []string
		for _, f := range ls.Files {
			ranges = append(ranges, fmt.Sprintf("L%d %d-%d", f.Level, f.MinTXID, f.MaxTXID))
			if f.Level == 0 && f.MinTXID == next {
				next = f.MaxTXID + 1
			}
		}
		if next != txid+1 {
			t.Errorf("level-0 history reaches TXID %d, want %d: the outage's commits must arrive as history; files %v", next-1, txid, ranges)
		}
		out := filepath.Join(t.TempDir(), "restored.db")
		if r := runCmd(t, filepath.Dir(out), creds, nil, ltxrestorePath, "-o", out, u); r.Code != 0 {
			t.Fatalf("ltxrestore from %s failed\n%s", u, r)
		}
		compareDBs(t, db, out)
	})

	// TLS with a private CA: ca= makes it work; without it the status says
	// why and commits go on.
	t.Run("PrivateCA", func(t *testing.T) {
		certsDir, caFile := s3test.WriteCerts(t, t.TempDir())
		tls := s3test.StartWith(t, s3test.Options{CertsDir: certsDir, CAFile: caFile})
		tcreds := []string{"LITESTREAM_ACCESS_KEY_ID=" + tls.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + tls.SecretKey}
		if !strings.HasPrefix(tls.Endpoint, "https://") {
			t.Fatalf("endpoint %s is not https", tls.Endpoint)
		}
		_, db := newDB(t)
		bucket := tls.NewBucket(t)
		uri := dbURI(db, "replica=s3://"+bucket+"/db", "endpoint="+tls.Endpoint, "ca="+caFile)
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 20)...)
		shellWrite(t, db, uri, append(lines, syncLine(60000)), shellOpts{Env: tcreds})
		out := filepath.Join(t.TempDir(), "restored.db")
		u := "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(tls.Endpoint) + "&ca=" + url.QueryEscape(caFile)
		if r := runCmd(t, filepath.Dir(out), tcreds, nil, ltxrestorePath, "-o", out, u); r.Code != 0 {
			t.Fatalf("ltxrestore from %s failed\n%s", u, r)
		}
		compareDBs(t, db, out)

		_, db2 := newDB(t)
		p := startC(t, db2, dbURI(db2, "replica=s3://"+bucket+"/db2", "endpoint="+tls.Endpoint), tcreds)
		p.must("PRAGMA journal_mode=WAL;")
		p.must("CREATE TABLE t(x); INSERT INTO t VALUES (1);") // commits succeed
		st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == "error" })
		if !ok || !strings.Contains(st.Str("last_error"), "certificate") {
			t.Errorf("without ca=: want state error naming the certificate problem: %s", st)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
	})

	// A missing bucket and an unreachable endpoint: commits unaffected, the
	// status says what is wrong.
	for _, tc := range []struct{ name, bucket, endpoint, want string }{
		{"MissingBucket", "no-such-bucket-here", srv.Endpoint, "bucket"},
		{"UnreachableEndpoint", "bkt", "http://127.0.0.1:1", "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, db := newDB(t)
			p := startC(t, db, dbURI(db, "replica=s3://"+tc.bucket+"/db", "endpoint="+tc.endpoint), creds)
			p.must("PRAGMA journal_mode=WAL;")
			for _, l := range workload(newSeed(t), 10) {
				p.must(l)
			}
			st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == "error" })
			if !ok || !strings.Contains(strings.ToLower(st.Str("last_error")), tc.want) {
				t.Errorf("want state error with %q in last_error: %s", tc.want, st)
			}
			if r := p.close(); r.Code != 0 {
				t.Fatalf("C client exit\n%s", r)
			}
		})
	}

	// LongOutage: the store is killed for 30 s in the middle of a steady
	// write workload. Commits do not stall: the slowest commit during the
	// outage is within 2x of the slowest before it (with a 50 ms floor for
	// this noisy machine); the status shows the outage; the replica
	// catches up and restores equal to the source.
	t.Run("LongOutage", func(t *testing.T) {
		if testing.Short() {
			t.Skip("30 s outage; run without -short")
		}
		srv := s3test.Start(t)
		creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
		_, db := newDB(t)
		bucket := srv.NewBucket(t)
		p := startC(t, db, dbURI(db, "replica=s3://"+bucket+"/db", "endpoint="+srv.Endpoint), creds)
		p.must("PRAGMA journal_mode=WAL;")
		p.must("CREATE TABLE steady(id INTEGER PRIMARY KEY, at TEXT, b BLOB);")
		commit := func() time.Duration {
			start := time.Now()
			p.must("INSERT INTO steady(at, b) VALUES (datetime('now'), randomblob(200));")
			return time.Since(start)
		}
		// steady commits every 20 ms for d and returns the 99th
		// percentile and the largest commit latency. A 2-core machine
		// deschedules a process now and then for a few hundred ms
		// whatever it runs (the build before the shared state showed a
		// 265 ms commit here), so the bound is on the p99, and the
		// largest must stay far below a stall (the gate timeout).
		steady := func(d time.Duration) (p99, max time.Duration, n int) {
			var lat []time.Duration
			end := time.Now().Add(d)
			for time.Now().Before(end) && n < 100000 {
				l := commit()
				lat = append(lat, l)
				max = maxDur(max, l)
				n++
				time.Sleep(20 * time.Millisecond)
			}
			slices.Sort(lat)
			return lat[len(lat)*99/100], max, n
		}
		before, beforeMax, nb := steady(5 * time.Second)
		p.sync(60000)
		srv.Kill()
		during, duringMax, nd := steady(30 * time.Second)
		st := p.status()
		if st.State() != "error" || st.Str("last_error") == "" {
			t.Errorf("status during the outage: %s", st)
		}
		srv.Restart(t)
		after, _, _ := steady(2 * time.Second)
		txid := p.sync(60000)
		t.Logf("commit latency p99 (max): before %v (%v, %d commits), during the outage %v (%v, %d), after %v; TXID %d", before, beforeMax, nb, during, duringMax, nd, after, txid)
		if limit := max(2*before, 50*time.Millisecond); during > limit {
			t.Errorf("commit latency p99 during the outage %v > %v (2x the p99 before, at least 50 ms)", during, limit)
		}
		if duringMax > time.Second {
			t.Errorf("a commit during the outage took %v", duringMax)
		}
		if st := p.status(); st.State() != "ok" {
			t.Errorf("status after recovery: %s", st)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
		out := filepath.Join(t.TempDir(), "restored.db")
		u := "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
		if r := runCmd(t, filepath.Dir(out), creds, nil, ltxrestorePath, "-o", out, u); r.Code != 0 {
			t.Fatalf("ltxrestore from %s failed\n%s", u, r)
		}
		compareDBs(t, db, out)
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		_, db := newDB(t)
		bucket := srv.NewBucket(t)
		bad := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=not-the-secret-xyz"}
		p := startC(t, db, s3URI(db, bucket), bad)
		p.must("PRAGMA journal_mode=WAL;")
		for _, l := range workload(newSeed(t), 10) {
			p.must(l) // commits succeed although the replica refuses them
		}
		st, ok := p.pollStatus(30*time.Second, func(st status) bool { return st.State() == "error" })
		if !ok {
			t.Fatalf("status never reached error with wrong credentials: %s", st)
		}
		if msg := st.Str("last_error"); !strings.Contains(strings.ToLower(msg), "access") || strings.Contains(msg, "not-the-secret-xyz") {
			t.Errorf("last_error %q: want an access error without the secret", msg)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
	})
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// checkJSONLog requires the log file to hold JSON lines of the extension's
// (component litestream, a level and a message), the first snapshot's,
// and no secret.
func checkJSONLog(t *testing.T, path, secret string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("LITESTREAM_LOG_FILE: %v", err)
	}
	if strings.Contains(string(b), secret) {
		t.Errorf("the log file shows the secret key")
	}
	lines := splitLines(strings.TrimSpace(string(b)))
	snapshots := 0
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["component"] != "litestream" || rec["level"] == nil || rec["msg"] == nil {
			t.Fatalf("log line %q is not a JSON record of the extension (%v)", l, err)
		}
		if rec["msg"] == "snapshot" {
			snapshots++
		}
	}
	if snapshots == 0 {
		t.Errorf("no \"snapshot\" record in %d log lines at debug level", len(lines))
	}
}
