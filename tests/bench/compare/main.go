// Command compare is the driver of tests/bench/compare.sh: plain SQLite,
// the extension and the Litestream 0.5.16 sidecar side by side, on a
// directory replica and on a local MinIO, all in one run, each figure a
// ratio against its baseline of the same run. It prints machine facts and
// a Markdown table; -write replaces the generated section of
// docs/performance.md.
//
// Everything talks only to 127.0.0.1; every loop is bounded in count and
// time. S3 requests are counted by a reverse proxy in front of MinIO (the
// clients see the proxy as the endpoint).
//
// Commit → durable lag: the writer logs each commit's wall-clock time; a
// watcher polls the replica's level-0 files (a directory every 2 ms, S3
// every 20 ms) and reads each new file's LTX header. A commit at time t is
// durable when the first file whose header timestamp (the capture time,
// for both the extension and Litestream) is at or after t has appeared.
// Resolution: the timestamps' millisecond, plus the poll interval.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/gotool"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
	"github.com/litestream-vfs/litestream_vfs/tests/bench/benchdoc"
)

// sizes of one run: full (the default) and -smoke (< 2 minutes in all).
type sizes struct {
	rounds     int
	txns       int
	sustained  time.Duration
	bulkRows   int
	lagSeconds float64
	putSeconds float64
	idle       time.Duration
	restoreMB  int
}

var (
	full  = sizes{rounds: 3, txns: 20000, sustained: 10 * time.Second, bulkRows: 1000000, lagSeconds: 10, putSeconds: 60, idle: 60 * time.Second, restoreMB: 1024}
	smoke = sizes{rounds: 1, txns: 1000, sustained: time.Second, bulkRows: 20000, lagSeconds: 1, putSeconds: 2, idle: time.Second, restoreMB: 16}
)

type env struct {
	root, work, writer, ext, litestream string
	st                                  *benchdoc.Store
	srv                                 *s3test.Server
	proxy                               *benchdoc.CountingProxy
	endpoint                            string // the proxy's
	mc                                  *minio.Client
	seq                                 int
	sz                                  sizes
}

func main() {
	benchdoc.Main("compare", "compare", func(root string, smokeRun bool) (string, error) {
		e := &env{root: root, sz: full, ext: filepath.Join(root, "litestream_vfs")}
		if smokeRun {
			e.sz = smoke
		}
		defer e.close()
		if err := e.setup(); err != nil {
			return "", err
		}
		return e.run()
	})
}

func (e *env) setup() error {
	var err error
	if e.work, err = os.MkdirTemp(e.root, ".bench-compare."); err != nil {
		return err
	}
	e.writer = filepath.Join(e.work, "compare")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", e.writer,
		filepath.Join(e.root, "tests", "bench", "compare.c"), "-lsqlite3").CombinedOutput(); err != nil {
		return fmt.Errorf("gcc compare.c: %v\n%s", err, out)
	}
	if e.litestream, err = gotool.Binary("litestream", "github.com/benbjohnson/litestream/cmd/litestream", "v0.5.16"); err != nil {
		return fmt.Errorf("litestream 0.5.16: %w", err)
	}
	if e.st, err = benchdoc.StartStore(); err != nil {
		return err
	}
	e.srv, e.proxy, e.endpoint, e.mc = e.st.Server, e.st.Proxy, e.st.ProxyURL, e.st.MC
	return nil
}

func (e *env) close() {
	e.st.Close()
	if e.work != "" {
		_ = os.RemoveAll(e.work)
	}
}

// A system is what replicates: nothing (plain), the extension, or the
// sidecar; on a replica: "dir" or "s3".
type system struct {
	name, replica string
	puts          string // the extension's LITESTREAM_MAX_PUTS_PER_SECOND ("" default)
}

func (s system) String() string {
	if s.name == "plain" {
		return "plain SQLite"
	}
	n := map[string]string{"ext": "extension", "sidecar": "Litestream sidecar"}[s.name]
	if s.puts != "" {
		n += ", max-puts-per-second=" + s.puts
	}
	return n + " (" + s.replica + ")"
}

// run is one replicating setup around one writer: a fresh database
// (created in WAL mode by the plain library), a fresh replica, the sidecar
// started and caught up first if there is one.
type run struct {
	e       *env
	sys     system
	dir, db string
	bucket  string
	prefix  string
	sidecar *exec.Cmd
}

func (e *env) newRun(sys system) (*run, error) {
	e.seq++
	r := &run{e: e, sys: sys, dir: filepath.Join(e.work, fmt.Sprintf("run%03d", e.seq))}
	r.db = filepath.Join(r.dir, "bench.db")
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command("sqlite3", r.db, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER);").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("create %s: %v %s", r.db, err, out)
	}
	if sys.replica == "s3" {
		r.bucket, r.prefix = fmt.Sprintf("compare-%d", e.seq), "db"
		if err := e.mc.MakeBucket(context.Background(), r.bucket, minio.MakeBucketOptions{Region: s3test.Region}); err != nil {
			return nil, err
		}
	}
	if sys.name == "sidecar" {
		if err := r.startSidecar(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *run) replicaDir() string { return filepath.Join(r.dir, "replica") }

func (r *run) writerEnv() []string {
	env := append(os.Environ(), "LITESTREAM_ACCESS_KEY_ID="+r.e.srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY="+r.e.srv.SecretKey)
	if r.sys.replica == "s3" {
		env = append(env, "LITESTREAM_REPLICA_URL=s3://"+r.bucket+"/"+r.prefix+"?endpoint="+url.QueryEscape(r.e.endpoint))
	} else {
		env = append(env, "LITESTREAM_REPLICA_URL=file://"+r.replicaDir())
	}
	if r.sys.puts != "" {
		env = append(env, "LITESTREAM_MAX_PUTS_PER_SECOND="+r.sys.puts)
	}
	return env
}

func (r *run) startSidecar() error {
	cfg := filepath.Join(r.dir, "litestream.yml")
	rep := "      - url: file://" + r.replicaDir() + "\n"
	if r.sys.replica == "s3" {
		rep = "      - type: s3\n        bucket: " + r.bucket + "\n        path: " + r.prefix + "\n        endpoint: " + r.e.endpoint +
			"\n        force-path-style: true\n        access-key-id: " + r.e.srv.AccessKey + "\n        secret-access-key: " + r.e.srv.SecretKey + "\n"
	}
	if err := os.WriteFile(cfg, []byte("dbs:\n  - path: "+r.db+"\n    replicas:\n"+rep), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(r.e.litestream, "replicate", "-config", cfg)
	cmd.Dir = r.dir
	// Its AWS SDK refuses to start when AWS_CA_BUNDLE is set.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	logf, err := os.Create(filepath.Join(r.dir, "litestream.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	r.sidecar = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := r.objects(); n > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("litestream replicate wrote nothing in 30 s (log %s)", logf.Name())
}

// stopSidecar ends the sidecar (SIGINT, as systemd would stop it) and
// returns its CPU seconds and peak RSS.
func (r *run) stopSidecar() (cpu float64, rssKB int64) {
	if r.sidecar == nil {
		return 0, 0
	}
	_ = r.sidecar.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = r.sidecar.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = r.sidecar.Process.Kill()
		<-done
	}
	ps := r.sidecar.ProcessState
	r.sidecar = nil
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ps.UserTime().Seconds() + ps.SystemTime().Seconds(), ru.Maxrss
	}
	return 0, 0
}

// objects counts the replica's LTX files (any level).
func (r *run) objects() (int, error) {
	if r.sys.replica == "s3" {
		n := 0
		for o := range r.e.mc.ListObjects(context.Background(), r.bucket, minio.ListObjectsOptions{Prefix: r.prefix + "/", Recursive: true}) {
			if o.Err != nil {
				return 0, o.Err
			}
			if strings.HasSuffix(o.Key, ".ltx") {
				n++
			}
		}
		return n, nil
	}
	m, err := filepath.Glob(filepath.Join(r.replicaDir(), "ltx", "*", "*.ltx"))
	return len(m), err
}

type result struct {
	elapsed, tps, cpu float64
	commits           int64
	rssKB             int64
	sideCPU           float64
	sideRSSKB         int64
	commitsAt         []int64 // paced: commit wall times (ms)
}

// write runs the writer with args and, for the sidecar, waits until the
// replica holds the last commit (its file count stops growing for 2 s,
// bounded by 30 s) before stopping it.
func (r *run) write(sync string, args ...string) (result, error) {
	mode := "plain"
	if r.sys.name == "ext" {
		mode = "ext"
	}
	argv := append([]string{mode, sync}, args...)
	argv = append(argv, r.db)
	if mode == "ext" {
		argv = append(argv, r.e.ext)
	}
	cmd := exec.Command(r.e.writer, argv...)
	cmd.Dir, cmd.Env = r.dir, r.writerEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("%s %v: %v\n%s", r.sys, args, err, stderr.String())
	}
	var res result
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if ms, ok := strings.CutPrefix(line, "commit "); ok {
			v, _ := strconv.ParseInt(ms, 10, 64)
			res.commitsAt = append(res.commitsAt, v)
			continue
		}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			x, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "elapsed":
				res.elapsed = x
			case "tps":
				res.tps = x
			case "cpu":
				res.cpu = x
			case "commits":
				res.commits = int64(x)
			case "maxrss_kb":
				res.rssKB = int64(x)
			}
		}
	}
	return res, nil
}

// settle waits until the replica's file count has not changed for quiet
// (at most limit).
func (r *run) settle(quiet, limit time.Duration) {
	last, since := -1, time.Now()
	for start := time.Now(); time.Since(start) < limit; time.Sleep(100 * time.Millisecond) {
		n, _ := r.objects()
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

func (r *run) finish(res *result) {
	if r.sidecar != nil {
		r.settle(1500*time.Millisecond, 30*time.Second) // past its 1 s sync
		res.sideCPU, res.sideRSSKB = r.stopSidecar()
	}
}

// watcher records when each level-0 file appears and its header timestamp.
type watcher struct {
	r    *run
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	seen map[string]bool
	apps []appearance
}

type appearance struct {
	at int64 // ms, wall clock, when first seen
	ts int64 // the file's header timestamp (ms)
}

func (r *run) watch() *watcher {
	w := &watcher{r: r, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go w.loop()
	return w
}

func (w *watcher) loop() {
	defer close(w.done)
	interval := 2 * time.Millisecond
	if w.r.sys.replica == "s3" {
		interval = 20 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		w.poll()
		select {
		case <-w.stop:
			w.poll()
			return
		case <-t.C:
		}
	}
}

func (w *watcher) poll() {
	r := w.r
	var names []string
	if r.sys.replica == "s3" {
		for o := range r.e.mc.ListObjects(context.Background(), r.bucket, minio.ListObjectsOptions{Prefix: r.prefix + "/0000/"}) {
			if o.Err == nil {
				names = append(names, o.Key)
			}
		}
	} else {
		ents, _ := os.ReadDir(filepath.Join(r.replicaDir(), "ltx", "0"))
		for _, ent := range ents {
			if strings.HasSuffix(ent.Name(), ".ltx") {
				names = append(names, filepath.Join(r.replicaDir(), "ltx", "0", ent.Name()))
			}
		}
	}
	now := time.Now().UnixMilli()
	for _, name := range names {
		if w.seen[name] {
			continue
		}
		w.seen[name] = true
		ts, err := w.headerTimestamp(name)
		if err != nil {
			continue
		}
		w.mu.Lock()
		w.apps = append(w.apps, appearance{at: now, ts: ts})
		w.mu.Unlock()
	}
}

func (w *watcher) headerTimestamp(name string) (int64, error) {
	var rc io.ReadCloser
	var err error
	if w.r.sys.replica == "s3" {
		opts := minio.GetObjectOptions{}
		_ = opts.SetRange(0, ltx.HeaderSize-1)
		rc, err = w.r.e.mc.GetObject(context.Background(), w.r.bucket, name, opts)
	} else {
		rc, err = os.Open(name)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	b := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(rc, b); err != nil {
		return 0, err
	}
	var h ltx.Header
	if err := h.UnmarshalBinary(b); err != nil {
		return 0, err
	}
	return h.Timestamp, nil
}

// lags returns each commit's lag in ms (commits no file covered are left
// out and counted in missing).
func (w *watcher) lags(commits []int64) (lags []float64, missing int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	apps := slices.Clone(w.apps)
	w.mu.Unlock()
	sort.Slice(apps, func(i, j int) bool { return apps[i].ts < apps[j].ts })
	for _, c := range commits {
		i := sort.Search(len(apps), func(i int) bool { return apps[i].ts >= c })
		// The first file at or after c by timestamp; a later-timestamped
		// file can have appeared earlier only if uploads reorder, which
		// neither tool does; take the earliest appearance among the rest.
		best := int64(-1)
		for j := i; j < len(apps) && j < i+4; j++ {
			if best < 0 || apps[j].at < best {
				best = apps[j].at
			}
		}
		if best < 0 {
			missing++
			continue
		}
		lags = append(lags, float64(max(best-c, 0)))
	}
	return lags, missing
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func median(xs []float64) float64 { return percentile(xs, 0.5) }
