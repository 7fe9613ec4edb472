package tests

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogFile: LITESTREAM_LOG_FILE takes the extension's log lines off
// stderr (the host's); one that cannot be opened leaves them on stderr,
// saying so, and the database opens all the same.
func TestLogFile(t *testing.T) {
	lines := []string{"PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);", syncLine(20000)}
	t.Run("Text", func(t *testing.T) {
		dir, db := newDB(t)
		logFile := filepath.Join(dir, "ls.log")
		r := runC(t, dir, dbURI(db), lines, []string{"LITESTREAM_LOG_LEVEL=info", "LITESTREAM_LOG_FILE=" + logFile})
		requireNoErr(t, "client", splitLines(r.Stdout), r)
		b, err := os.ReadFile(logFile)
		if err != nil || !strings.Contains(string(b), "component=litestream") || !strings.Contains(string(b), "msg=snapshot") {
			t.Errorf("log file (%v):\n%s", err, b)
		}
		if strings.Contains(r.Stderr, "component=litestream") {
			t.Errorf("log lines on stderr with LITESTREAM_LOG_FILE set:\n%s", r.Stderr)
		}
	})
	t.Run("CannotOpen", func(t *testing.T) {
		dir, db := newDB(t)
		r := runC(t, dir, dbURI(db), lines, []string{"LITESTREAM_LOG_FILE=" + filepath.Join(dir, "no-such-dir", "ls.log")})
		requireNoErr(t, "client", splitLines(r.Stdout), r)
		if !strings.Contains(r.Stderr, "LITESTREAM_LOG_FILE cannot be opened") {
			t.Errorf("no warning on stderr for a log file that cannot be opened:\n%s", r.Stderr)
		}
	})
}

// TestMetrics: LITESTREAM_METRICS_ADDR serves the status of every
// database of the process as Prometheus metrics; a second process asking
// for the same port logs that it has none and replicates all the same.
func TestMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, db := newDB(t)
	env := []string{"LITESTREAM_METRICS_ADDR=" + addr}
	p := startC(t, db, dbURI(db), env)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
	txid := p.sync(20000)
	p.pollStatus(10*time.Second, func(st status) bool { return st.State() == "ok" })
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("litestream_vfs_replicated_txid{db=%q} %d", db, txid),
		fmt.Sprintf("litestream_vfs_state{db=%q,state=\"ok\"} 1", db),
		fmt.Sprintf("litestream_vfs_replication_lag_seconds{db=%q} 0", db),
		fmt.Sprintf("litestream_vfs_snapshots_total{db=%q,kind=\"database\"} 1", db),
		fmt.Sprintf("litestream_vfs_upload_errors_total{db=%q,kind=\"network\"} 0", db),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
	// The byte figures agree with the status and the replica.
	st := p.status()
	var replicaBytes int64
	ltxFiles, _ := filepath.Glob(filepath.Join(db+"-replica", "ltx", "*", "*.ltx"))
	for _, f := range ltxFiles {
		if fi, err := os.Stat(f); err == nil {
			replicaBytes += fi.Size()
		}
	}
	if up := st.Int("uploaded_bytes"); up <= 0 || up != replicaBytes || !strings.Contains(string(b), fmt.Sprintf("litestream_vfs_uploaded_bytes_total{db=%q} %d", db, up)) {
		t.Errorf("uploaded_bytes %d, replica holds %d bytes; status %s", up, replicaBytes, st)
	}
	if sp := st.Int("spool_bytes"); sp <= 0 || !strings.Contains(string(b), fmt.Sprintf("litestream_vfs_spool_bytes{db=%q} %d", db, sp)) {
		t.Errorf("spool_bytes %d (the spool keeps a local copy of what it shipped); status %s", sp, st)
	}
	r := runC(t, dir, dbURI(db), []string{"INSERT INTO t VALUES(2);", syncLine(20000)}, append(env, "LITESTREAM_LOG_LEVEL=info"))
	requireNoErr(t, "second process", splitLines(r.Stdout), r)
	if !strings.Contains(r.Stderr, "no metrics endpoint") || !strings.Contains(r.Stderr, "address already in use") {
		t.Errorf("second process on the same metrics port: stderr lacks the warning:\n%s", r.Stderr)
	}
	if r := p.close(); r.Code != 0 {
		t.Fatalf("C client exit\n%s", r)
	}
}
