// Command syncbench is the driver of tests/bench_sync.sh (issue 13): the
// commit latency (p50, p99) and throughput of replicate=sync against
// replicate=async and plain SQLite, on a directory replica and a local
// MinIO, with 1, 4 and 16 concurrent writers, as threads of one process
// and as separate processes. Each writer (tests/c/syncwriter.c) commits
// one 100-byte row per autocommit INSERT for a fixed time and reports each
// commit's latency. It prints machine facts and a Markdown table; -write
// replaces the generated section of docs/performance.md.
//
// Everything talks only to 127.0.0.1; every run is bounded in time.
package main

import (
	"bufio"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/litestream-vfs/litestream_vfs/tests/bench/benchdoc"
)

type env struct {
	root, work, writer, ext string
	st                      *benchdoc.Store
	seq                     int
	seconds                 float64
}

func main() {
	benchdoc.Main("syncbench", "sync", func(root string, smoke bool) (string, error) {
		e := &env{root: root, ext: filepath.Join(root, "litestream_vfs.so"), seconds: 5}
		writers := []int{1, 4, 16}
		if smoke {
			e.seconds, writers = 0.5, []int{1, 4}
		}
		defer e.close()
		if err := e.setup(); err != nil {
			return "", err
		}
		return e.table(writers, smoke)
	})
}

func (e *env) setup() error {
	var err error
	if e.work, err = os.MkdirTemp(e.root, ".bench-sync."); err != nil {
		return err
	}
	e.writer = filepath.Join(e.work, "syncwriter")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", e.writer,
		filepath.Join(e.root, "tests", "c", "syncwriter.c"), "-lsqlite3", "-lpthread").CombinedOutput(); err != nil {
		return fmt.Errorf("gcc syncwriter.c: %v\n%s", err, out)
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

// A setup is what one run measures.
type setup struct {
	mode    string // plain, async or sync
	store   string // dir or s3 ("" for plain)
	writers int
	procs   bool // separate processes, else threads of one
}

// figures of one run: commit latencies and the throughput of all writers.
type figures struct {
	p50, p99 time.Duration
	rate     float64
}

func (e *env) table(writers []int, smoke bool) (string, error) {
	var b strings.Builder
	cmd := "./tests/bench_sync.sh"
	if smoke {
		cmd += " --smoke"
	}
	fmt.Fprintf(&b, "Measured %s by `%s` on %s; %g s of single-row autocommit INSERTs (synchronous=NORMAL) per run.\n\n",
		time.Now().UTC().Format("2006-01-02"), cmd, benchdoc.Machine(), e.seconds)
	b.WriteString("| writers | as | mode | replica | p50 ms | p99 ms | commits/s |\n|---|---|---|---|---|---|---|\n")
	for _, n := range writers {
		for _, procs := range []bool{false, true} {
			if n == 1 && procs {
				continue // one writer: a thread and a process are the same
			}
			for _, s := range []setup{{mode: "plain"}, {mode: "async", store: "dir"}, {mode: "sync", store: "dir"}, {mode: "async", store: "s3"}, {mode: "sync", store: "s3"}} {
				s.writers, s.procs = n, procs
				f, err := e.run(s)
				if err != nil {
					return "", fmt.Errorf("%+v: %w", s, err)
				}
				as := map[bool]string{false: "threads", true: "processes"}[procs]
				store := map[string]string{"": "—", "dir": "directory", "s3": "MinIO"}[s.store]
				mode := map[string]string{"plain": "plain SQLite", "async": "async", "sync": "**sync**"}[s.mode]
				fmt.Fprintf(&b, "| %d | %s | %s | %s | %.2f | %.2f | %.0f |\n", n, as, mode, store, ms(f.p50), ms(f.p99), f.rate)
				log.Printf("%d %s %s %s: p50 %v p99 %v %.0f/s", n, as, s.mode, s.store, f.p50, f.p99, f.rate)
			}
		}
	}
	return b.String(), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run starts the writers of s on a fresh database and replica, waits for
// them and returns their figures.
func (e *env) run(s setup) (figures, error) {
	e.seq++
	dir := filepath.Join(e.work, fmt.Sprintf("run%03d", e.seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return figures{}, err
	}
	db := filepath.Join(dir, "bench.db")
	if out, err := exec.Command("sqlite3", db, "PRAGMA journal_mode=WAL; CREATE TABLE s(tid INTEGER, k INTEGER, pad BLOB, PRIMARY KEY(tid, k));").CombinedOutput(); err != nil {
		return figures{}, fmt.Errorf("create %s: %v %s", db, err, out)
	}
	ext, uri := "-", db
	env := os.Environ()
	if s.mode != "plain" {
		ext = e.ext
		uri = "file:" + db + "?vfs=litestream&replicate=" + s.mode
		if s.store == "s3" {
			bucket := fmt.Sprintf("sync-%d", e.seq)
			if err := e.st.MakeBucket(bucket); err != nil {
				return figures{}, err
			}
			uri += "&replica=s3://" + bucket + "/db&endpoint=" + e.st.Endpoint
			env = append(env, "LITESTREAM_ACCESS_KEY_ID="+e.st.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY="+e.st.SecretKey)
		}
	}
	procs, threads := 1, s.writers
	if s.procs {
		procs, threads = s.writers, 1
	}
	secs := strconv.FormatFloat(e.seconds, 'f', -1, 64)
	var mu sync.Mutex
	var lat []time.Duration
	var commits int
	var wg sync.WaitGroup
	errs := make(chan error, 2*procs)
	for i := 0; i < procs; i++ {
		c := exec.Command(e.writer, ext, uri, strconv.Itoa(threads), "100000000", secs, strconv.Itoa(i*threads))
		c.Dir, c.Env, c.Stderr = dir, env, os.Stderr
		out, err := c.StdoutPipe()
		if err != nil {
			return figures{}, err
		}
		if err := c.Start(); err != nil {
			return figures{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 4 && f[0] == "ACK" {
					ns, _ := strconv.ParseInt(f[3], 10, 64)
					mine = append(mine, time.Duration(ns))
				} else if len(f) > 0 && f[0] == "ERR" && len(errs) < cap(errs)-1 {
					errs <- fmt.Errorf("writer: %s", sc.Text())
				}
			}
			if err := c.Wait(); err != nil {
				errs <- fmt.Errorf("writer %d: %w", c.Process.Pid, err)
			}
			mu.Lock()
			lat = append(lat, mine...)
			commits += len(mine)
			mu.Unlock()
		}()
	}
	// Bounded: each writer stops after its seconds; its exit flush is
	// bounded by LITESTREAM_EXIT_FLUSH_MS (5 s).
	wg.Wait()
	close(errs)
	for err := range errs {
		return figures{}, err
	}
	if len(lat) == 0 {
		return figures{}, fmt.Errorf("no commits")
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return figures{p50: q(0.50), p99: q(0.99), rate: float64(commits) / e.seconds}, nil
}
