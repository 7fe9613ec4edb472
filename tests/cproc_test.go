package tests

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cproc is a long-running C client: one SQL line in, its output lines out.
type cproc struct {
	tb     testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
	done   chan struct{}
	state  *os.ProcessState

	fileWarningsExpected bool // the test unlinks or replaces the open database
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startC starts the C client on uri, requires it to open db, and ends it by
// PID at cleanup if the test did not close it.
func startC(tb testing.TB, db, uri string, env []string) *cproc {
	tb.Helper()
	return startClient(tb, db, env, cClientPath, extPath, uri)
}

// startPy is startC with the python client (tests/py/client.py), which
// speaks the same line protocol.
func startPy(tb testing.TB, db, uri string, env []string) *cproc {
	tb.Helper()
	return startClient(tb, db, env, python3Bin, pyClientPath, extPath, uri)
}

func startClient(tb testing.TB, db string, env []string, name string, args ...string) *cproc {
	tb.Helper()
	uri := args[len(args)-1]
	cmd := exec.Command(name, args...)
	cmd.Dir = filepath.Dir(db)
	cmd.Env = childEnv(env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &cproc{tb: tb, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start C client: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			for range p.lines { // unblock the reader goroutine
			}
			<-p.done
		}
	})
	first, ok := p.next(30 * time.Second)
	if !ok || !samePath(strings.TrimPrefix(first, "OPENED "), db) {
		tb.Fatalf("C client did not open %s: first line %q\nstderr:\n%s", uri, first, tail(p.stderr.String(), 3000))
	}
	return p
}

// next returns the next output line, or false at EOF; it fails the test after
// timeout (killing the client).
func (p *cproc) next(timeout time.Duration) (string, bool) {
	p.tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case l, ok := <-p.lines:
		return l, ok
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		p.tb.Fatalf("C client: no output within %s\nstderr:\n%s", timeout, tail(p.stderr.String(), 3000))
		return "", false
	}
}

// exec runs one line of SQL and returns its rows and, if it failed, the ERR
// line.
func (p *cproc) exec(sql string) (rows []string, errLine string) {
	p.tb.Helper()
	if strings.ContainsAny(sql, "\n\r") {
		p.tb.Fatalf("C client takes one line of SQL per command: %q", sql)
	}
	if _, err := io.WriteString(p.stdin, sql+"\n"); err != nil {
		p.tb.Fatalf("C client: write %q: %v\nstderr:\n%s", sql, err, tail(p.stderr.String(), 3000))
	}
	for {
		l, ok := p.next(5 * time.Minute)
		if !ok {
			<-p.done
			p.tb.Fatalf("C client exited during %q (%v)\nstderr:\n%s", sql, p.state, tail(p.stderr.String(), 3000))
		}
		switch {
		case l == "OK":
			return rows, ""
		case strings.HasPrefix(l, "ERR "):
			return rows, l
		}
		rows = append(rows, l)
	}
}

// must runs sql and fails the test on an SQL error.
func (p *cproc) must(sql string) []string {
	p.tb.Helper()
	rows, e := p.exec(sql)
	if e != "" {
		p.tb.Fatalf("C client: %s: %s\nstderr:\n%s", sql, e, tail(p.stderr.String(), 3000))
	}
	return rows
}

// status runs litestream_status().
func (p *cproc) status() status {
	p.tb.Helper()
	return lastStatus(p.tb, p.must(statusSQL))
}

// sync runs litestream_sync(timeoutMS) and returns the TXID.
func (p *cproc) sync(timeoutMS int) int64 {
	p.tb.Helper()
	return lastTXID(p.tb, p.must(syncLine(timeoutMS)))
}

// close ends the client's input and waits for it to exit.
func (p *cproc) close() result {
	p.tb.Helper()
	_ = p.stdin.Close()
	var rest []string
	for {
		l, ok := p.next(2 * time.Minute)
		if !ok {
			break
		}
		rest = append(rest, l)
	}
	<-p.done
	r := result{Stdout: strings.Join(rest, "\n"), Stderr: p.stderr.String()}
	fillState(&r, p.state)
	if !p.fileWarningsExpected {
		checkNoFileWarnings(p.tb, "C client", r.Stderr)
	}
	return r
}

// kill ends the client with SIGKILL (by PID) and waits for it: no close, no
// atexit handlers.
func (p *cproc) kill() {
	p.tb.Helper()
	_ = p.cmd.Process.Kill()
	for range p.lines { // unblock the reader goroutine
	}
	<-p.done
}

// pollStatus polls litestream_status() until cond holds or timeout passes,
// and returns the last status.
func (p *cproc) pollStatus(timeout time.Duration, cond func(status) bool) (status, bool) {
	p.tb.Helper()
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		st := p.status()
		if cond(st) {
			return st, true
		}
		if time.Now().After(deadline) || i > 100000 {
			return st, false
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
