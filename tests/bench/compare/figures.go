package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
	"github.com/litestream-vfs/litestream_vfs/tests/bench/benchdoc"
)

var (
	plain      = system{name: "plain"}
	extDir     = system{name: "ext", replica: "dir"}
	extS3      = system{name: "ext", replica: "s3"}
	extS3Puts  = system{name: "ext", replica: "s3", puts: "10"}
	sideDir    = system{name: "sidecar", replica: "dir"}
	sideS3     = system{name: "sidecar", replica: "s3"}
	replicated = []system{extDir, extS3, sideDir, sideS3}
)

// run measures every figure and returns the Markdown.
func (e *env) run() (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s by `./tests/bench/compare.sh%s` on %s.\n\n", time.Now().UTC().Format("2006-01-02"), map[bool]string{true: " --smoke", false: ""}[e.sz == smoke], benchdoc.Machine())
	if err := e.throughput(&b); err != nil {
		return "", err
	}
	if err := e.lag(&b); err != nil {
		return "", err
	}
	if err := e.putCost(&b); err != nil {
		return "", err
	}
	if err := e.idleCost(&b); err != nil {
		return "", err
	}
	if err := e.restoreCost(&b); err != nil {
		return "", err
	}
	return b.String(), nil
}

type workload struct {
	name, sync string
	args       []string
	rate       bool // compare commits per second (sustained), not time
}

// throughput: each workload on every system, rounds in rotating order;
// the figure is the median of each round's ratio to plain SQLite's.
func (e *env) throughput(b *strings.Builder) error {
	n := strconv.Itoa(e.sz.txns)
	loads := []workload{
		{name: n + " single-row transactions, synchronous=NORMAL", sync: "NORMAL", args: []string{"txns", n}},
		{name: n + " single-row transactions, synchronous=FULL", sync: "FULL", args: []string{"txns", n}},
		{name: fmt.Sprintf("a sustained single-row writer, %v (commits/s)", e.sz.sustained), sync: "NORMAL", args: []string{"sustained", strconv.Itoa(int(e.sz.sustained.Seconds()))}, rate: true},
		{name: fmt.Sprintf("a bulk load: %d rows in one transaction", e.sz.bulkRows), sync: "NORMAL", args: []string{"bulk", strconv.Itoa(e.sz.bulkRows)}},
	}
	systems := append([]system{plain}, replicated...)
	fmt.Fprintf(b, "| write workload | plain SQLite | %s | %s | %s | %s |\n|---|---|---|---|---|---|\n", extDir, extS3, sideDir, sideS3)
	var rss = map[string][]float64{}
	for _, w := range loads {
		ratios := map[string][]float64{}
		var base []float64
		for round := 0; round < e.sz.rounds; round++ {
			res := map[string]result{}
			for k := range systems {
				sys := systems[(k+round)%len(systems)]
				r, err := e.newRun(sys)
				if err != nil {
					return err
				}
				out, err := r.write(w.sync, w.args...)
				r.finish(&out)
				if err != nil {
					return err
				}
				res[sys.String()] = out
				if w.args[0] == "txns" && w.sync == "NORMAL" {
					rss[sys.String()] = append(rss[sys.String()], float64(out.rssKB))
					if sys.name == "sidecar" {
						rss["sidecar process "+sys.replica] = append(rss["sidecar process "+sys.replica], float64(out.sideRSSKB))
					}
				}
			}
			p := res[plain.String()]
			if w.rate {
				base = append(base, p.tps)
			} else {
				base = append(base, p.elapsed)
			}
			for _, sys := range replicated {
				o := res[sys.String()]
				if w.rate {
					ratios[sys.String()] = append(ratios[sys.String()], p.tps/o.tps)
				} else {
					ratios[sys.String()] = append(ratios[sys.String()], o.elapsed/p.elapsed)
				}
			}
		}
		unit := fmt.Sprintf("%.3f s", median(base))
		if w.rate {
			unit = fmt.Sprintf("%.0f commits/s", median(base))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", w.name, unit,
			ratio(ratios[extDir.String()]), ratio(ratios[extS3.String()]), ratio(ratios[sideDir.String()]), ratio(ratios[sideS3.String()]))
	}
	fmt.Fprintf(b, "\nEach cell: the time (for the sustained writer: plain's commits per second over the system's) as a multiple of plain SQLite's in the same round, median of %d rounds; 1.00 is no cost. The sidecar's writer is plain SQLite with `litestream replicate` running beside it.\n\n", e.sz.rounds)
	fmt.Fprintf(b, "| peak RSS (%s single-row transactions) | MiB |\n|---|---|\n", n)
	for _, k := range []string{plain.String(), extDir.String(), extS3.String(), sideDir.String() + ": the writer", "sidecar process dir", sideS3.String() + ": the writer", "sidecar process s3"} {
		key := strings.TrimSuffix(strings.TrimSuffix(k, ": the writer"), "")
		fmt.Fprintf(b, "| %s | %.1f |\n", k, median(rss[key])/1024)
	}
	b.WriteString("\n")
	return nil
}

func ratio(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", median(xs))
}

// lag: commits paced at 50 and 1000 a second, nobody waiting in
// litestream_sync; commit → durable in the replica.
func (e *env) lag(b *strings.Builder) error {
	b.WriteString("| commit → durable in the replica | p50 ms | p99 ms | max ms | commits | not found |\n|---|---|---|---|---|---|\n")
	secs := strconv.FormatFloat(e.sz.lagSeconds, 'f', -1, 64)
	for _, rate := range []string{"50", "1000"} {
		for _, sys := range replicated {
			lags, missing, n, err := e.pacedLag(sys, rate, secs)
			if err != nil {
				return err
			}
			fmt.Fprintf(b, "| %s txn/s, %s | %.0f | %.0f | %.0f | %d | %d |\n", rate, sys, percentile(lags, 0.5), percentile(lags, 0.99), percentile(lags, 1), n, missing)
		}
	}
	b.WriteString("\nLag: each commit's wall-clock time against the appearance of the first level-0 file whose LTX header timestamp (its capture) is at or after it, the replica polled every 2 ms (directory) or 20 ms (S3 LIST); no `litestream_sync` is called.\n\n")
	return nil
}

func (e *env) pacedLag(sys system, rate, secs string) ([]float64, int, int, error) {
	r, err := e.newRun(sys)
	if err != nil {
		return nil, 0, 0, err
	}
	w := r.watch()
	out, err := r.write("NORMAL", "paced", rate, secs)
	r.finish(&out)
	time.Sleep(1500 * time.Millisecond) // the last upload lands
	lags, missing := w.lags(out.commitsAt)
	return lags, missing, len(out.commitsAt), err
}

// putCost: PUTs per minute and lag at 50 txn/s on S3 for the extension's
// default budget, max-puts-per-second=10, and the sidecar.
func (e *env) putCost(b *strings.Builder) error {
	secs := strconv.FormatFloat(e.sz.putSeconds, 'f', -1, 64)
	fmt.Fprintf(b, "| 50 txn/s for %s s on S3 | PUTs per minute | requests per minute | lag p50 ms | lag p99 ms |\n|---|---|---|---|---|\n", secs)
	for _, sys := range []system{extS3, extS3Puts, sideS3} {
		r, err := e.newRun(sys)
		if err != nil {
			return err
		}
		before := e.proxy.Snapshot()
		start := time.Now()
		w := r.watch()
		out, err := r.write("NORMAL", "paced", "50", secs)
		if err != nil {
			return err
		}
		after := e.proxy.Snapshot()
		minutes := time.Since(start).Minutes()
		r.finish(&out)
		lags, _ := w.lags(out.commitsAt)
		fmt.Fprintf(b, "| %s | %.0f | %.0f | %.0f | %.0f |\n", sys, float64(benchdoc.Puts(before, after))/minutes, float64(benchdoc.Requests(before, after))/minutes,
			percentile(lags, 0.5), percentile(lags, 0.99))
	}
	b.WriteString("\nRequests are counted by a proxy in front of MinIO while the writer runs (PUT and POST; the lag watcher's LIST and GET go straight to MinIO and are not counted). The extension's default budget: 1 PUT a second sustained, a burst of 10.\n\n")
	return nil
}

// idleCost: requests and CPU seconds of an idle database on S3.
func (e *env) idleCost(b *strings.Builder) error {
	idle := e.sz.idle
	fmt.Fprintf(b, "| idle for %v after one commit, S3 | requests | CPU seconds |\n|---|---|---|\n", idle)
	for _, sys := range []system{extS3, sideS3} {
		r, err := e.newRun(sys)
		if err != nil {
			return err
		}
		var reqs int64
		var cpu float64
		if sys.name == "ext" {
			// The writer commits, syncs, then idles for idle+1 s; counted
			// from 1 s in to its end.
			total := idle + time.Second
			done := make(chan struct{})
			var out result
			var werr error
			go func() {
				out, werr = r.write("NORMAL", "idle", strconv.Itoa(int(total.Seconds())))
				close(done)
			}()
			time.Sleep(time.Second)
			before := e.proxy.Snapshot()
			<-done
			if werr != nil {
				return werr
			}
			reqs, cpu = benchdoc.Requests(before, e.proxy.Snapshot()), out.cpu
		} else {
			if _, err := r.write("NORMAL", "txns", "1"); err != nil {
				return err
			}
			r.settle(1500*time.Millisecond, 30*time.Second)
			before, cpu0 := e.proxy.Snapshot(), benchdoc.ProcCPU(r.sidecar.Process.Pid)
			time.Sleep(idle)
			reqs, cpu = benchdoc.Requests(before, e.proxy.Snapshot()), benchdoc.ProcCPU(r.sidecar.Process.Pid)-cpu0
			r.stopSidecar()
		}
		fmt.Fprintf(b, "| %s | %d | %.2f |\n", sys, reqs, cpu)
	}
	b.WriteString("\nThe extension's CPU is its whole host process's during the idle time (getrusage); the sidecar's is its own (/proc/PID/stat).\n\n")
	return nil
}

// restoreCost: a database of restoreMB (random blobs: LZ4 cannot shrink
// it) replicated by the extension with checksums=false to a directory and
// to S3 (a snapshot and a dozen update transactions), restored by
// ltxrestore and by `litestream restore`, beside cp + fsync of the file.
func (e *env) restoreCost(b *strings.Builder) error {
	dir := filepath.Join(e.work, "restore")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	db := filepath.Join(dir, "app.db")
	rows := e.sz.restoreMB * 1024 / 4
	if out, err := exec.Command("sqlite3", db, fmt.Sprintf(`PRAGMA journal_mode=WAL; PRAGMA page_size=4096;
CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO t(b) SELECT randomblob(3900) FROM c;
PRAGMA wal_checkpoint(TRUNCATE);`, rows)).CombinedOutput(); err != nil {
		return fmt.Errorf("build the restore database: %v %s", err, out)
	}
	e.seq++
	bucket := fmt.Sprintf("compare-restore-%d", e.seq)
	if err := e.mc.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{Region: s3test.Region}); err != nil {
		return err
	}
	dirRep := filepath.Join(dir, "replica")
	s3URL := "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(e.endpoint)
	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + e.srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + e.srv.SecretKey}
	var sql strings.Builder
	sql.WriteString("SELECT litestream_sync(600000);\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&sql, "UPDATE t SET b = randomblob(3900) WHERE id %% 97 = %d; SELECT litestream_sync(600000);\n", i)
	}
	for _, rep := range []string{"file://" + dirRep, s3URL} {
		cmd := exec.Command("sqlite3", "-cmd", ".load "+e.ext, "-cmd", ".open file:"+db+"?vfs=litestream&checksums=false&replica="+url.QueryEscape(rep))
		cmd.Env = append(os.Environ(), creds...)
		cmd.Stdin = strings.NewReader(sql.String())
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "Error") {
			return fmt.Errorf("replicate the restore database to %s: %v %s", rep, err, out)
		}
		// The next replica is a new one: the state directory belongs to the last.
		if err := os.RemoveAll(db + "-litestream"); err != nil {
			return err
		}
	}
	st, err := os.Stat(db)
	if err != nil {
		return err
	}
	mb := float64(st.Size()) / (1 << 20)
	lsCfg := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(lsCfg, []byte("dbs:\n  - path: "+db+"\n    replicas:\n      - type: s3\n        bucket: "+bucket+"\n        path: db\n        endpoint: "+e.endpoint+
		"\n        force-path-style: true\n        access-key-id: "+e.srv.AccessKey+"\n        secret-access-key: "+e.srv.SecretKey+"\n"), 0o644); err != nil {
		return err
	}
	out := filepath.Join(dir, "out.db")
	ltxr := filepath.Join(e.root, "bin", "ltxrestore")
	cases := []struct {
		name string
		argv []string
	}{
		{"cp, then fsync (coreutils `sync FILE`)", []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", db, out}},
		{"ltxrestore, directory", []string{ltxr, "-o", out, "file://" + dirRep}},
		{"`litestream restore`, directory", []string{e.litestream, "restore", "-o", out, "file://" + dirRep}},
		{"ltxrestore, S3", []string{ltxr, "-o", out, s3URL}},
		{"`litestream restore`, S3", []string{e.litestream, "restore", "-config", lsCfg, "-o", out, db}},
	}
	fmt.Fprintf(b, "| restore of a %.0f MiB database | seconds | MB/s | × cp + fsync | peak RSS MiB |\n|---|---|---|---|---|\n", mb)
	var base float64
	for i, c := range cases {
		_ = os.Remove(out)
		syncDisk()
		cmd := exec.Command(c.argv[0], c.argv[1:]...)
		for _, kv := range append(os.Environ(), creds...) {
			if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		start := time.Now()
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", c.name, err, o)
		}
		secs := time.Since(start).Seconds()
		if i == 0 {
			base = secs
		}
		var rss int64
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
		fmt.Fprintf(b, "| %s | %.2f | %.0f | %.2f× | %.0f |\n", c.name, secs, mb/secs, secs/base, float64(rss)/1024)
	}
	b.WriteString("\nThe replica: one snapshot and 12 update transactions, written by the extension with `checksums=false` (so Litestream reads it), on the same disk and the same MinIO. The page cache is dropped before each command where the machine allows it.\n\n")
	return nil
}

// syncDisk flushes dirty pages and, where allowed, drops the page cache.
func syncDisk() {
	syscall.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
}
