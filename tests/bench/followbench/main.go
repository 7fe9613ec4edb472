// Command followbench is the driver of tests/bench_follow.sh (issue 13):
// how far `ltxrestore -follow` on a local MinIO trails its source. A
// python3 source with the extension commits one row a transaction at 50
// txn/s, each row holding the wall-clock time of its COMMIT; a reader
// polls the follower's database every 2 ms (read-only, plain SQLite) and
// times each row from its commit to when it is visible there. Then the
// source is idle and the follower's requests (counted by a proxy in front
// of MinIO that only the follower uses) and CPU time are measured. It
// prints machine facts and a Markdown table; -write replaces the generated
// section of docs/performance.md.
//
// Everything talks only to 127.0.0.1; every run is bounded in time.
package main

import (
	"database/sql"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/litestream-vfs/litestream_vfs/tests/bench/benchdoc"
)

type env struct {
	root, work string
	st         *benchdoc.Store
	seq        int
	writeFor   time.Duration
	idleFor    time.Duration
}

func main() {
	benchdoc.Main("followbench", "follow", func(root string, smoke bool) (string, error) {
		e := &env{root: root, writeFor: 30 * time.Second, idleFor: 30 * time.Second}
		if smoke {
			e.writeFor, e.idleFor = 3*time.Second, 3*time.Second
		}
		defer e.close()
		if err := e.setup(); err != nil {
			return "", err
		}
		return e.table(smoke)
	})
}

func (e *env) setup() error {
	var err error
	if e.work, err = os.MkdirTemp(e.root, ".bench-follow."); err != nil {
		return err
	}
	e.st, err = benchdoc.StartStore()
	return err
}

func (e *env) close() {
	e.st.Close()
	if e.work != "" {
		_ = os.RemoveAll(e.work)
	}
}

// A setup is the follower's interval and the source's PUT cap.
type setup struct {
	interval time.Duration
	puts     string // max-puts-per-second of the source ("": the default)
}

func (e *env) table(smoke bool) (string, error) {
	var b strings.Builder
	cmd := "./tests/bench_follow.sh"
	if smoke {
		cmd += " --smoke"
	}
	fmt.Fprintf(&b, "Measured %s by `%s` on %s; the source commits at 50 txn/s for %v, then is idle for %v.\n\n",
		time.Now().UTC().Format("2006-01-02"), cmd, benchdoc.Machine(), e.writeFor, e.idleFor)
	b.WriteString("| follower -interval | source max-puts-per-second | commits seen | commit → visible p50 ms | p99 ms | max ms | follower requests/min while the source writes | idle: requests per interval | idle: follower CPU s/min |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range []setup{{time.Second, ""}, {time.Second, "0"}, {100 * time.Millisecond, "0"}} {
		r, err := e.run(s)
		if err != nil {
			return "", fmt.Errorf("%+v: %w", s, err)
		}
		puts := map[string]string{"": "1 (default)", "0": "0 (no cap)"}[s.puts]
		fmt.Fprintf(&b, "| %v | %s | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.3f |\n", s.interval, puts, r.seen,
			ms(r.p50), ms(r.p99), ms(r.max), r.busyPerMin, r.idlePerInterval, r.idleCPUPerMin)
		log.Printf("%+v: %+v", s, r)
	}
	return b.String(), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type result struct {
	seen                                       int
	p50, p99, max                              time.Duration
	busyPerMin, idlePerInterval, idleCPUPerMin float64
}

func (e *env) run(s setup) (result, error) {
	var r result
	e.seq++
	dir := filepath.Join(e.work, fmt.Sprintf("run%02d", e.seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	bucket := fmt.Sprintf("follow-%d", e.seq)
	if err := e.st.MakeBucket(bucket); err != nil {
		return r, err
	}
	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + e.st.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + e.st.SecretKey}
	db := filepath.Join(dir, "source.db")
	uri := "file:" + db + "?vfs=litestream&replica=s3://" + bucket + "/db&endpoint=" + e.st.Endpoint
	if s.puts != "" {
		uri += "&max-puts-per-second=" + s.puts
	}
	// A first row, so the follower has a replica to restore.
	if err := e.python(dir, creds, uri, "1", "0.1").Run(); err != nil {
		return r, fmt.Errorf("first row: %w", err)
	}
	out := filepath.Join(dir, "follower.db")
	follower := exec.Command(filepath.Join(e.root, "bin", "ltxrestore"), "-follow", "-interval", s.interval.String(), "-o", out,
		"s3://"+bucket+"/db?endpoint="+url.QueryEscape(e.st.ProxyURL))
	follower.Env, follower.Stderr = append(os.Environ(), creds...), os.Stderr
	if err := follower.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = follower.Process.Signal(syscall.SIGTERM) // our child, by PID
		_ = follower.Wait()
	}()
	reader, err := waitOpen(out, 30*time.Second)
	if err != nil {
		return r, err
	}
	defer func() { _ = reader.Close() }()

	before := e.st.Proxy.Snapshot()
	source := e.python(dir, creds, uri, "50", fmt.Sprint(e.writeFor.Seconds()))
	if err := source.Start(); err != nil {
		return r, err
	}
	done := make(chan error, 1)
	go func() { done <- source.Wait() }()
	var lags []time.Duration
	var last int64
	start := time.Now()
	poll := func() error {
		rows, err := reader.Query("SELECT id, ts FROM tick WHERE id > ? ORDER BY id", last)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		now := time.Now()
		for rows.Next() {
			var id int64
			var ts float64
			if err := rows.Scan(&id, &ts); err != nil {
				return err
			}
			if id > 1 { // the first row predates the follower
				lags = append(lags, now.Sub(time.Unix(0, int64(ts*1e9))))
			}
			last = id
		}
		return rows.Err()
	}
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return r, fmt.Errorf("source: %w", err)
			}
			running = false
		case <-time.After(2 * time.Millisecond):
		}
		if err := poll(); err != nil {
			return r, err
		}
		if time.Since(start) > e.writeFor+2*time.Minute {
			return r, fmt.Errorf("the source did not end")
		}
	}
	// Until the follower has the last row.
	for t := time.Now(); time.Since(t) < 30*time.Second; time.Sleep(2 * time.Millisecond) {
		var n int64
		if err := reader.QueryRow("SELECT count(*) FROM tick").Scan(&n); err != nil {
			return r, err
		}
		if err := poll(); err != nil {
			return r, err
		}
		if n == last && len(lags)+1 == int(n) {
			break
		}
	}
	busy := time.Since(start)
	r.busyPerMin = float64(benchdoc.Requests(before, e.st.Proxy.Snapshot())) / busy.Minutes()
	// Idle.
	time.Sleep(s.interval + time.Second)
	before, cpu0 := e.st.Proxy.Snapshot(), benchdoc.ProcCPU(follower.Process.Pid)
	time.Sleep(e.idleFor)
	idleReqs := benchdoc.Requests(before, e.st.Proxy.Snapshot())
	r.idlePerInterval = float64(idleReqs) / (float64(e.idleFor) / float64(s.interval))
	r.idleCPUPerMin = (benchdoc.ProcCPU(follower.Process.Pid) - cpu0) / e.idleFor.Minutes()
	if len(lags) == 0 {
		return r, fmt.Errorf("no rows seen on the follower")
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	r.seen, r.p50, r.p99, r.max = len(lags), q(0.5), q(0.99), lags[len(lags)-1]
	return r, nil
}

// python returns the ticker source (tests/py/ticker.py) at rate for
// seconds.
func (e *env) python(dir string, creds []string, uri, rate, seconds string) *exec.Cmd {
	c := exec.Command("/usr/bin/python3", filepath.Join(e.root, "tests", "py", "ticker.py"), filepath.Join(e.root, "litestream_vfs"), uri, rate, seconds)
	c.Dir, c.Env, c.Stderr = dir, append(os.Environ(), creds...), os.Stderr
	return c
}

// waitOpen opens the follower's database read-only once it has table
// tick.
func waitOpen(path string, d time.Duration) (*sql.DB, error) {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path + "-follow"); err == nil {
			db, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}).String())
			if err != nil {
				return nil, err
			}
			var n int
			if err := db.QueryRow("SELECT count(*) FROM tick").Scan(&n); err == nil {
				return db, nil
			}
			_ = db.Close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the follower's %s is not there after %v", path, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
