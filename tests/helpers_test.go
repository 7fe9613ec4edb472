package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Clients under test. The system binaries are named by absolute path on
// purpose: a pyenv python3 on PATH may lack enable_load_extension.
const (
	sqlite3Bin = "/usr/bin/sqlite3"
	python3Bin = "/usr/bin/python3"
)

// cmdTimeout bounds every process a test starts.
const cmdTimeout = 10 * time.Minute

// Paths set by TestMain.
var (
	repoRoot       string // the module root
	extPath        string // the extension, without the .so suffix, as SQLite users name it
	ltxrestorePath string // bin/ltxrestore
	cClientPath    string // tests/c/client.c compiled into a temp dir
	pyClientPath   string // tests/py/client.py
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	repoRoot = root
	extPath = filepath.Join(root, "litestream_vfs")
	ltxrestorePath = filepath.Join(root, "bin", "ltxrestore")
	pyClientPath = filepath.Join(root, "tests", "py", "client.py")

	for _, bin := range []string{sqlite3Bin, python3Bin} {
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is required (apt-get install -y sqlite3 libsqlite3-dev python3, or run ./tests/run.sh): %v\n", bin, err)
			return 1
		}
	}

	if !fileExists(extPath+".so") || !fileExists(ltxrestorePath) {
		fmt.Fprintf(os.Stderr, "e2e: litestream_vfs.so or bin/ltxrestore missing; running ./build.sh\n")
		cmd := exec.Command(filepath.Join(root, "build.sh"))
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: ./build.sh: %v\n", err)
			return 1
		}
	}

	tmp, err := os.MkdirTemp("", "litestream-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	cClientPath = filepath.Join(tmp, "client")
	gcc := exec.Command("gcc", "-Wall", "-Wextra", "-Werror", "-O2",
		"-o", cClientPath, filepath.Join(root, "tests", "c", "client.c"), "-lsqlite3")
	if out, err := gcc.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: compile tests/c/client.c: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// findRepoRoot walks up from the working directory to the directory holding
// go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// result is what a finished process left behind.
type result struct {
	Stdout, Stderr string
	Code           int    // exit code; -1 if killed by a signal
	Signal         string // the signal that killed it, if any
	MaxRSS         int64  // peak resident set size, KiB
	Elapsed        time.Duration
}

// String summarizes r for failure messages.
func (r result) String() string {
	return fmt.Sprintf("exit=%d signal=%q elapsed=%s\n--- stdout ---\n%s\n--- stderr ---\n%s",
		r.Code, r.Signal, r.Elapsed.Round(time.Millisecond), headTail(r.Stdout, 1500), headTail(r.Stderr, 1500))
}

// headTail shortens s to its first and last n bytes.
func headTail(s string, n int) string {
	if len(s) <= 2*n {
		return s
	}
	return s[:n] + " … " + s[len(s)-n:]
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// childEnv is the test process's environment without LITESTREAM_* variables,
// plus extra ("K=V").
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LITESTREAM_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCmd runs name with args in dir, feeding stdin, and waits at most
// cmdTimeout, after which the process is killed by PID and the test fails.
func runCmd(tb testing.TB, dir string, env []string, stdin io.Reader, name string, args ...string) result {
	tb.Helper()
	return runCmdTo(tb, dir, env, stdin, nil, name, args...)
}

// runCmdTo is runCmd with stdout streamed to w instead of captured, if w is
// not nil.
func runCmdTo(tb testing.TB, dir string, env []string, stdin io.Reader, w io.Writer, name string, args ...string) result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(env)
	cmd.WaitDelay = 10 * time.Second
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if w != nil {
		cmd.Stdout = w
	}
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	if ctx.Err() != nil {
		tb.Fatalf("%s %s: timed out after %s and was killed\n%s", name, strings.Join(args, " "), cmdTimeout, r)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		tb.Fatalf("run %s: %v", name, err)
	}
	fillState(&r, cmd.ProcessState)
	return r
}

func fillState(r *result, ps *os.ProcessState) {
	if ps == nil {
		return
	}
	r.Code = ps.ExitCode()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = ws.Signal().String()
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSS = ru.Maxrss
	}
}

// dbURI is the file: URI opening path through the litestream VFS, with extra
// query parameters ("replica=...").
func dbURI(path string, params ...string) string {
	u := "file:" + path + "?vfs=litestream"
	for _, p := range params {
		u += "&" + p
	}
	return u
}

// fileURL is the file:// replica URL of dir.
func fileURL(dir string) string { return "file://" + dir }

// shellOpts tunes runShell.
type shellOpts struct {
	Loads  int      // how many times to .load the extension; 0 means 1
	Log    bool     // add .log stderr before .open, to see sqlite3_log lines
	NoBail bool     // don't pass -bail
	Env    []string // extra environment ("K=V")
}

// dbFileProbe prints the main database's file name; empty means the shell fell
// back to an in-memory database (the 3.40 shell does that silently when .open
// fails).
const dbFileProbe = "SELECT 'DBFILE:'||file FROM pragma_database_list WHERE name='main';"

// runShell runs the sqlite3 shell with the extension loaded and uri opened by
// .open, feeding script (dbFileProbe first) on stdin.
func runShell(tb testing.TB, dir, uri, script string, o shellOpts) result {
	tb.Helper()
	var args []string
	if !o.NoBail {
		args = append(args, "-bail")
	}
	if o.Log {
		args = append(args, "-cmd", ".log stderr")
	}
	loads := o.Loads
	if loads == 0 {
		loads = 1
	}
	for i := 0; i < loads; i++ {
		args = append(args, "-cmd", ".load "+extPath)
	}
	args = append(args, "-cmd", ".open "+uri)
	return runCmd(tb, dir, o.Env, strings.NewReader(dbFileProbe+"\n"+script+"\n"), sqlite3Bin, args...)
}

// shellWrite runs lines through the sqlite3 shell on db (opened with uri),
// requires success and that the real file was opened, and returns stdout's
// lines after the probe.
func shellWrite(tb testing.TB, db, uri string, lines []string, o shellOpts) []string {
	tb.Helper()
	o.Log = true
	r := runShell(tb, filepath.Dir(db), uri, strings.Join(lines, "\n"), o)
	if r.Code != 0 {
		tb.Fatalf("sqlite3 shell on %s failed\n%s", uri, r)
	}
	checkNoFileWarnings(tb, "sqlite3 shell", r.Stderr)
	out := splitLines(r.Stdout)
	if len(out) == 0 || !samePath(strings.TrimPrefix(out[0], "DBFILE:"), db) {
		tb.Fatalf("sqlite3 shell did not open %s through the extension (got %q; the shell falls back to :memory: when .open fails)\n%s",
			db, firstLine(out), r)
	}
	return out[1:]
}

func firstLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// samePath reports whether a and b name the same file.
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	ea, err1 := filepath.EvalSymlinks(a)
	eb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ea == eb
}

// runC runs the C client on uri with lines on stdin and returns the result
// (not checked).
func runC(tb testing.TB, dir, uri string, lines []string, env []string) result {
	tb.Helper()
	return runCmd(tb, dir, env, strings.NewReader(strings.Join(lines, "\n")+"\n"), cClientPath, extPath, uri)
}

// runPy runs tests/py/client.py on uri with args after it and lines on stdin.
func runPy(tb testing.TB, dir, uri string, lines []string, env []string, args ...string) result {
	tb.Helper()
	argv := append([]string{pyClientPath, extPath, uri}, args...)
	return runCmd(tb, dir, env, strings.NewReader(strings.Join(lines, "\n")+"\n"), python3Bin, argv...)
}

// clientWrite runs lines through the C client (or the python client if py)
// and requires exit 0, "OPENED db" first and no ERR line. It returns stdout's
// lines after OPENED.
func clientWrite(tb testing.TB, py bool, db, uri string, lines []string, env []string) []string {
	tb.Helper()
	var r result
	name := "C client"
	if py {
		name = "python client"
		r = runPy(tb, filepath.Dir(db), uri, lines, env)
	} else {
		r = runC(tb, filepath.Dir(db), uri, lines, env)
	}
	out := splitLines(r.Stdout)
	if r.Code != 0 {
		tb.Fatalf("%s on %s failed\n%s", name, uri, r)
	}
	if len(out) == 0 || !samePath(strings.TrimPrefix(out[0], "OPENED "), db) {
		tb.Fatalf("%s did not open %s (first line %q)\n%s", name, db, firstLine(out), r)
	}
	requireNoErr(tb, name, out, r)
	checkNoFileWarnings(tb, name, r.Stderr)
	return out[1:]
}

// fileWarnings are what os_unix.c logs (SQLITE_WARNING) when the file it
// holds open is not the one at its path any more — or when the path it was
// given (and keeps as zPath, also used to name the -shm file) was freed.
var fileWarnings = []string{"file renamed while open", "file unlinked while open", "multiple links to file"}

// checkNoFileWarnings fails the test if stderr holds an sqlite3_log line from
// fileWarnings (the C client and the shell with .log print them).
func checkNoFileWarnings(tb testing.TB, who, stderr string) {
	tb.Helper()
	var bad []string
	for _, l := range splitLines(stderr) {
		for _, w := range fileWarnings {
			if strings.Contains(l, w) {
				bad = append(bad, strings.ToValidUTF8(l, "\uFFFD"))
				break
			}
		}
	}
	if len(bad) > 0 {
		tb.Errorf("%s: sqlite3_log reported %d file warning(s), first %q (the VFS's underlying unix file has a bad or freed path)", who, len(bad), bad[0])
	}
}

// requireNoErr fails if any line reports an SQL error.
func requireNoErr(tb testing.TB, who string, lines []string, r result) {
	tb.Helper()
	for i, l := range lines {
		if strings.HasPrefix(l, "ERR ") {
			tb.Fatalf("%s: SQL error on output line %d: %s\n%s", who, i+1, l, r)
		}
	}
}

// Markers make the interesting rows easy to find in any client's output.
const (
	syncSQL   = "SELECT 'TXID:'||litestream_sync(%d);"
	statusSQL = "SELECT 'STATUS:'||litestream_status();"
)

func syncLine(timeoutMS int) string { return fmt.Sprintf(syncSQL, timeoutMS) }

// lastTXID returns the value of the last "TXID:n" line.
func lastTXID(tb testing.TB, lines []string) int64 {
	tb.Helper()
	for i := len(lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(lines[i], "TXID:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatalf("litestream_sync returned %q, want an integer TXID", v)
			}
			return n
		}
	}
	tb.Fatalf("no litestream_sync result in output:\n%s", tail(strings.Join(lines, "\n"), 2000))
	return 0
}

// status is litestream_status()'s JSON object.
type status map[string]any

// statusKeys are the keys litestream_status() must return.
var statusKeys = []string{"db", "replica", "state", "local_txid", "replicated_txid",
	"pending_txns", "pending_bytes", "last_error", "last_error_at", "reason"}

// validStates are the values of status.state.
var validStates = map[string]bool{"starting": true, "ok": true, "behind": true, "error": true, "needs-snapshot": true, "not-replicating": true, "degraded": true}

// parseStatus decodes one litestream_status() result and checks its shape.
func parseStatus(tb testing.TB, s string) status {
	tb.Helper()
	var st status
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&st); err != nil {
		tb.Fatalf("litestream_status() is not a JSON object: %v: %q", err, s)
	}
	var missing []string
	for _, k := range statusKeys {
		if _, ok := st[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		tb.Errorf("litestream_status() lacks keys %v: %s", missing, s)
	}
	if !validStates[st.State()] {
		tb.Errorf("litestream_status() state=%q, not one of starting|ok|behind|error|needs-snapshot|not-replicating: %s", st.State(), s)
	}
	return st
}

// lastStatus returns the last "STATUS:{...}" line, decoded.
func lastStatus(tb testing.TB, lines []string) status {
	tb.Helper()
	for i := len(lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(lines[i], "STATUS:"); ok {
			return parseStatus(tb, v)
		}
	}
	tb.Fatalf("no litestream_status result in output:\n%s", tail(strings.Join(lines, "\n"), 2000))
	return nil
}

// State is status.state.
func (st status) State() string { s, _ := st["state"].(string); return s }

// Str is a string field ("" if absent or not a string).
func (st status) Str(k string) string { s, _ := st[k].(string); return s }

// Int is an integer field (-1 if absent or not a number).
func (st status) Int(k string) int64 {
	n, ok := st[k].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

// String renders st as JSON.
func (st status) String() string { b, _ := json.Marshal(map[string]any(st)); return string(b) }

// sqlitePlain runs the sqlite3 shell on path without the extension.
func sqlitePlain(tb testing.TB, path string, sql string) string {
	tb.Helper()
	r := runCmd(tb, filepath.Dir(path), nil, strings.NewReader(sql+"\n"), sqlite3Bin, "-bail", path)
	if r.Code != 0 {
		tb.Fatalf("sqlite3 %s <<< %q failed\n%s", path, sql, r)
	}
	return strings.TrimRight(r.Stdout, "\n")
}

// dumpHash is the sha256 of `sqlite3 path .dump`, streamed (dumps of the large
// scenarios are hundreds of MB).
func dumpHash(tb testing.TB, path string) string {
	tb.Helper()
	h := sha256.New()
	r := runCmdTo(tb, filepath.Dir(path), nil, nil, h, sqlite3Bin, path, ".dump")
	if r.Code != 0 || strings.TrimSpace(r.Stderr) != "" {
		tb.Fatalf("sqlite3 %s .dump failed\n%s", path, r)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// integrityCheck requires PRAGMA integrity_check on path to say ok.
func integrityCheck(tb testing.TB, path string) {
	tb.Helper()
	if got := sqlitePlain(tb, path, "PRAGMA integrity_check;"); got != "ok" {
		tb.Fatalf("PRAGMA integrity_check on %s = %q, want ok", path, tail(got, 2000))
	}
}

// restore runs bin/ltxrestore -o out [args...] url and requires success.
func restore(tb testing.TB, url string, args ...string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "restored.db")
	argv := append([]string{"-o", out}, args...)
	argv = append(argv, url)
	r := runCmd(tb, filepath.Dir(out), nil, nil, ltxrestorePath, argv...)
	if r.Code != 0 {
		tb.Fatalf("ltxrestore %s failed\n%s", strings.Join(argv, " "), r)
	}
	if !fileExists(out) {
		tb.Fatalf("ltxrestore %s exited 0 but wrote no %s", strings.Join(argv, " "), out)
	}
	return out
}

// verifyRestore restores url into a temp dir and requires the result to equal
// src (which must be closed by its writers): same .dump sha256, integrity
// ok on both, same page size and page count. It returns the restored path.
func verifyRestore(tb testing.TB, src, url string) string {
	tb.Helper()
	out := restore(tb, url)
	compareDBs(tb, src, out)
	return out
}

// compareDBs requires restored to hold the same database as src.
func compareDBs(tb testing.TB, src, restored string) {
	tb.Helper()
	hs, hr := dumpHash(tb, src), dumpHash(tb, restored)
	if hs != hr {
		tb.Errorf("restored .dump sha256 %s != source %s\n%s", hr, hs, diffSummary(tb, src, restored))
	}
	integrityCheck(tb, src)
	integrityCheck(tb, restored)
	if got := sqlitePlain(tb, src, "SELECT group_concat(name) FROM sqlite_schema WHERE name LIKE '%litestream%';"); got != "" {
		tb.Errorf("the extension added objects to the user's database: %s", got)
	}
	for _, pragma := range []string{"page_size", "page_count", "auto_vacuum"} {
		a := sqlitePlain(tb, src, "PRAGMA "+pragma+";")
		b := sqlitePlain(tb, restored, "PRAGMA "+pragma+";")
		if a != b {
			tb.Errorf("PRAGMA %s: restored=%s, source=%s", pragma, b, a)
		}
	}
	if tb.Failed() {
		tb.FailNow()
	}
}

// diffSummary describes how two databases differ: schema and per-table row
// counts.
func diffSummary(tb testing.TB, a, b string) string {
	tb.Helper()
	var sb strings.Builder
	schemaA := sqlitePlain(tb, a, "SELECT type, name FROM sqlite_schema ORDER BY 1, 2;")
	schemaB := sqlitePlain(tb, b, "SELECT type, name FROM sqlite_schema ORDER BY 1, 2;")
	if schemaA != schemaB {
		fmt.Fprintf(&sb, "schema differs:\n source: %q\n restored: %q\n", schemaA, schemaB)
	}
	for _, tbl := range splitLines(sqlitePlain(tb, a, "SELECT name FROM sqlite_schema WHERE type='table' ORDER BY 1;")) {
		q := fmt.Sprintf("SELECT count(*) FROM %q;", tbl)
		ca := sqlitePlain(tb, a, q)
		r := runCmd(tb, filepath.Dir(b), nil, strings.NewReader(q+"\n"), sqlite3Bin, b)
		cb := strings.TrimSpace(r.Stdout + r.Stderr)
		if ca != cb {
			fmt.Fprintf(&sb, "table %s: source %s rows, restored %s\n", tbl, ca, cb)
		} else {
			fmt.Fprintf(&sb, "table %s: %s rows in both (contents differ?)\n", tbl, ca)
		}
	}
	return sb.String()
}

var ltxName = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$`)

// replicaLTXFiles counts LTX files per level under dir/ltx/<level>/ and fails
// on anything there not named like one.
func replicaLTXFiles(tb testing.TB, dir string) map[string]int {
	tb.Helper()
	levels := map[string]int{}
	root := filepath.Join(dir, "ltx")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 2 || !ltxName.MatchString(parts[1]) {
			if strings.HasSuffix(path, ".tmp") {
				return nil
			}
			tb.Errorf("replica: unexpected file %s (want ltx/<level>/<min>-<max>.ltx)", path)
			return nil
		}
		if _, err := strconv.Atoi(parts[0]); err != nil {
			tb.Errorf("replica: level directory %q is not a decimal number", parts[0])
		}
		levels[parts[0]]++
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatalf("walk replica %s: %v", dir, err)
	}
	return levels
}

// requireReplica fails unless dir holds at least one LTX file.
func requireReplica(tb testing.TB, dir string) {
	tb.Helper()
	levels := replicaLTXFiles(tb, dir)
	n := 0
	for _, c := range levels {
		n += c
	}
	if n == 0 {
		tb.Fatalf("replica %s holds no ltx/<level>/*.ltx files", dir)
	}
	tb.Logf("replica %s: LTX files per level %v", dir, levels)
}

// envCount returns the positive integer in the environment variable name,
// or def if it is unset.
func envCount(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive count", name, s)
	}
	return n
}
