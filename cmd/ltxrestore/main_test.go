package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/superfly/ltx"
)

// binary is the ltxrestore executable built by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ltxrestore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	binary = filepath.Join(dir, "ltxrestore")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build ltxrestore: %v\n", err)
		return 1
	}
	return m.Run()
}

const pageSize = 4096

// sqliteFixture is a replica of a real SQLite database: TXID 1 is the
// database after creating a table, TXID 2 after inserting rows.
type sqliteFixture struct {
	dir    string              // replica directory
	images map[ltx.TXID][]byte // database file after each TXID
}

// readPages returns the pages of a database file.
func readPages(t *testing.T, path string) (uint32, map[uint32][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%pageSize != 0 {
		t.Fatalf("%s is %d bytes, not a multiple of %d", path, len(b), pageSize)
	}
	pages := make(map[uint32][]byte)
	for i := 0; i < len(b); i += pageSize {
		pages[uint32(i/pageSize)+1] = b[i : i+pageSize]
	}
	return uint32(len(b) / pageSize), pages
}

// exec runs SQL statements on the database at path.
func execSQL(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// newSQLiteFixture builds a replica from a real database: TXID 1 is a
// snapshot stored at level 0, TXID 2 changes only the pages that differ.
func newSQLiteFixture(t *testing.T) *sqliteFixture {
	t.Helper()
	work := t.TempDir()
	dbPath := filepath.Join(work, "src.db")
	fx := &sqliteFixture{dir: filepath.Join(work, "replica"), images: make(map[ltx.TXID][]byte)}
	c := file.NewClient(fx.dir)

	execSQL(t, dbPath,
		fmt.Sprintf("PRAGMA page_size=%d", pageSize),
		"PRAGMA journal_mode=DELETE",
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
		"CREATE INDEX t_v ON t (v)",
	)
	commit, pages := readPages(t, dbPath)
	db := replicatest.NewDB(pageSize)
	replicatest.WriteFile(t, c, 0, db.Tx(t, commit, pages))
	fx.images[1] = db.Image()

	execSQL(t, dbPath, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) "+
		"INSERT INTO t (v) SELECT printf('row %d %s', i, hex(randomblob(40))) FROM n")
	commit, pages = readPages(t, dbPath)
	changed := make(map[uint32][]byte)
	old := fx.images[1]
	for pgno, b := range pages {
		off := int(pgno-1) * pageSize
		if off >= len(old) || !bytes.Equal(old[off:off+pageSize], b) {
			changed[pgno] = b
		}
	}
	replicatest.WriteFile(t, c, 0, db.Tx(t, commit, changed))
	fx.images[2] = db.Image()
	if src, _ := os.ReadFile(dbPath); !bytes.Equal(src, fx.images[2]) {
		t.Fatal("fixture image differs from the source database")
	}
	return fx
}

// garbageReplica returns a replica whose pages are valid LTX but not a
// SQLite database.
func garbageReplica(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	db := replicatest.NewDB(pageSize)
	replicatest.WriteFile(t, file.NewClient(dir), 9, db.Tx(t, 3, db.Pages(1, 1, 2, 3)))
	return dir
}

// gapReplica returns a replica with TXIDs 1 and 3 but not 2.
func gapReplica(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	c := file.NewClient(dir)
	db := replicatest.NewDB(pageSize)
	replicatest.WriteFile(t, c, 0, db.Tx(t, 3, db.Pages(1, 1, 2, 3)))
	db.Tx(t, 3, db.Pages(2, 2))
	replicatest.WriteFile(t, c, 0, db.Tx(t, 3, db.Pages(3, 3)))
	return dir
}

// result is the outcome of running the binary.
type result struct {
	code           int
	stdout, stderr string
}

func runBinary(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	code := 0
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run ltxrestore: %v", err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestCLI(t *testing.T) {
	fx := newSQLiteFixture(t)
	tests := []struct {
		name      string
		args      func(out string) []string
		preexist  bool // create OUT before running
		wantCode  int
		wantTXID  ltx.TXID // expected content of OUT on success
		wantErr   []string // substrings of stderr
		wantLines int      // stderr lines, if non-zero
	}{
		{
			name:     "Latest",
			args:     func(out string) []string { return []string{"-o", out, fx.dir} },
			wantTXID: 2, wantErr: []string{"restored TXID 2 (0x0000000000000002) to ", "pages, 2 files"}, wantLines: 1,
		},
		{
			name:     "RestoreSubcommand",
			args:     func(out string) []string { return []string{"restore", "-o", out, fx.dir} },
			wantTXID: 2,
		},
		{
			name:     "FlagsAfterURL",
			args:     func(out string) []string { return []string{fx.dir, "-o", out, "-txid", "1"} },
			wantTXID: 1,
		},
		{
			name:     "FileURL",
			args:     func(out string) []string { return []string{"-o", out, "file://" + fx.dir} },
			wantTXID: 2,
		},
		{
			name:     "TXIDDecimal",
			args:     func(out string) []string { return []string{"-txid", "1", "-o", out, fx.dir} },
			wantTXID: 1, wantErr: []string{"restored TXID 1 (0x0000000000000001)", "1 files"},
		},
		{
			name:     "TXIDHex",
			args:     func(out string) []string { return []string{"-txid", "0x2", "-o", out, fx.dir} },
			wantTXID: 2,
		},
		{
			name:     "TXID16Hex",
			args:     func(out string) []string { return []string{"-txid", "0000000000000001", "-o", out, fx.dir} },
			wantTXID: 1,
		},
		{
			name:     "Force",
			args:     func(out string) []string { return []string{"-f", "-o", out, fx.dir} },
			preexist: true, wantTXID: 2,
		},
		{
			name:     "NoIntegrityCheck",
			args:     func(out string) []string { return []string{"-no-integrity-check", "-o", out, fx.dir} },
			wantTXID: 2,
		},
		{
			name:     "OutputExists",
			args:     func(out string) []string { return []string{"-o", out, fx.dir} },
			preexist: true, wantCode: 1, wantErr: []string{"ltxrestore: output file exists: "}, wantLines: 1,
		},
		{
			name:     "TargetPastLatest",
			args:     func(out string) []string { return []string{"-txid", "3", "-o", out, fx.dir} },
			wantCode: 1, wantErr: []string{"ltxrestore: target txid not found", "0000000000000003"}, wantLines: 1,
		},
		{
			name:     "MissingReplica",
			args:     func(out string) []string { return []string{"-o", out, filepath.Join(fx.dir, "nope")} },
			wantCode: 1, wantErr: []string{"ltxrestore: ", "replica has no ltx files"}, wantLines: 1,
		},
		{
			name:     "Gap",
			args:     func(out string) []string { return []string{"-o", out, gapReplica(t)} },
			wantCode: 1, wantLines: 1,
			wantErr: []string{"ltxrestore: txid gap after 0000000000000001: next file starts at 0000000000000003 (ltx/0/0000000000000003-0000000000000003.ltx)"},
		},
		{
			name:     "IntegrityCheckFails",
			args:     func(out string) []string { return []string{"-o", out, garbageReplica(t)} },
			wantCode: 1, wantErr: []string{"ltxrestore: verify restored database: "}, wantLines: 1,
		},
		{
			name:     "IntegrityCheckSkipped",
			args:     func(out string) []string { return []string{"-no-integrity-check", "-o", out, garbageReplica(t)} },
			wantCode: 0,
		},
		{
			name:     "Parallelism1",
			args:     func(out string) []string { return []string{"-parallelism", "1", "-o", out, fx.dir} },
			wantTXID: 2,
		},
		{
			name:     "Parallelism64",
			args:     func(out string) []string { return []string{"-o", out, "-parallelism=64", fx.dir} },
			wantTXID: 2,
		},
		{"ParallelismZero", func(out string) []string { return []string{"-parallelism", "0", "-o", out, fx.dir} }, false, 2, 0, []string{"invalid -parallelism 0: want at least 1"}, 0},
		{"ParallelismNotNumber", func(out string) []string { return []string{"-parallelism", "x", "-o", out, fx.dir} }, false, 2, 0, []string{"-parallelism"}, 0},
		{"NoOutput", func(out string) []string { return []string{fx.dir} }, false, 2, 0, []string{"ltxrestore: -o OUT.db required"}, 0},
		{"NoURL", func(out string) []string { return []string{"-o", out} }, false, 2, 0, []string{"ltxrestore: replica URL required"}, 0},
		{"TwoURLs", func(out string) []string { return []string{"-o", out, fx.dir, fx.dir} }, false, 2, 0, []string{"one replica URL expected"}, 0},
		{"BadTXID", func(out string) []string { return []string{"-txid", "12abc", "-o", out, fx.dir} }, false, 2, 0, []string{`invalid -txid "12abc"`}, 0},
		{"NegativeTXID", func(out string) []string { return []string{"-txid", "-1", "-o", out, fx.dir} }, false, 2, 0, []string{"invalid -txid"}, 0},
		// Each of these restored the latest state with exit 0.
		{"ZeroTXID", func(out string) []string { return []string{"-txid", "0", "-o", out, fx.dir} }, false, 2, 0, []string{`invalid -txid "0": TXIDs start at 1`}, 0},
		{"RepeatedTXID", func(out string) []string { return []string{"-txid", "3", "-txid=4", "-o", out, fx.dir} }, false, 2, 0, []string{"-txid given more than once"}, 0},
		{"ZeroHexTXID", func(out string) []string { return []string{"-txid", "0x0", "-o", out, fx.dir} }, false, 2, 0, []string{`invalid -txid "0x0": TXIDs start at 1`}, 0},
		{"EmptyTXID", func(out string) []string { return []string{"-txid", "", "-o", out, fx.dir} }, false, 2, 0, []string{`invalid -txid ""`}, 0},
		{"EmptyTimestamp", func(out string) []string { return []string{"-timestamp", "", "-o", out, fx.dir} }, false, 2, 0, []string{`invalid -timestamp ""`}, 0},
		{"EmptyTXIDAndTimestamp", func(out string) []string { return []string{"-txid=", "-timestamp=", "-o", out, fx.dir} }, false, 2, 0, []string{"-txid and -timestamp are mutually exclusive"}, 0},
		{"UnknownFlag", func(out string) []string { return []string{"-x", "-o", out, fx.dir} }, false, 2, 0, []string{"flag provided but not defined: -x"}, 0},
		{"IntervalWithoutFollow", func(out string) []string { return []string{"-interval", "1s", "-o", out, fx.dir} }, false, 2, 0, []string{"-interval applies to -follow only"}, 0},
		{"FollowTXID", func(out string) []string { return []string{"-follow", "-txid", "2", "-o", out, fx.dir} }, false, 2, 0, []string{"-follow keeps the latest state"}, 0},
		{"FollowIfDBNotExists", func(out string) []string { return []string{"-follow", "-if-db-not-exists", "-o", out, fx.dir} }, false, 2, 0, []string{"not with -if-db-not-exists"}, 0},
		{"FollowIntervalTooShort", func(out string) []string { return []string{"-follow", "-interval", "1ms", "-o", out, fx.dir} }, false, 2, 0, []string{"invalid -interval 1ms: want 10ms to 24h"}, 0},
		{"FollowIntervalNotDuration", func(out string) []string { return []string{"-follow", "-interval", "5", "-o", out, fx.dir} }, false, 2, 0, []string{"-interval"}, 0},
		{"RepeatedInterval", func(out string) []string {
			return []string{"-follow", "-interval", "1s", "-interval=2s", "-o", out, fx.dir}
		}, false, 2, 0, []string{"-interval given more than once"}, 0},
		// An existing database that no follower left is not replaced.
		{"FollowOverForeignDB", func(out string) []string { return []string{"-follow", "-o", out, fx.dir} }, true, 1, 0, []string{"exists and is not a follower's"}, 0},
		// An S3 replica that cannot be reached (a closed loopback port): a
		// restore failure naming the store, not a usage error.
		{"S3Unreachable", func(out string) []string {
			return []string{"-o", out, "s3://bucket/db?endpoint=http://127.0.0.1:1"}
		}, false, 1, 0, []string{"s3: list bucket/db/"}, 0},
		{"S3BadOption", func(out string) []string { return []string{"-o", out, "s3://bucket/db?force-path-style=maybe"} }, false, 2, 0, []string{"force-path-style"}, 0},
		{"BadURL", func(out string) []string { return []string{"-o", out, "file://host/x"} }, false, 2, 0, []string{"invalid replica url", `host "host"`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			const old = "previous content"
			if tt.preexist {
				if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := runBinary(t, tt.args(out)...)
			if r.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q, want it to contain %q", r.stderr, s)
				}
			}
			if tt.wantLines > 0 {
				if got := strings.Count(r.stderr, "\n"); got != tt.wantLines {
					t.Errorf("stderr has %d lines, want %d:\n%s", got, tt.wantLines, r.stderr)
				}
			}
			if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(matches) > 0 {
				t.Fatalf("temporary files left behind: %v", matches)
			}
			got, err := os.ReadFile(out)
			switch {
			case tt.wantCode != 0 && tt.preexist:
				if string(got) != old {
					t.Fatalf("OUT changed after failure: %d bytes, %v", len(got), err)
				}
			case tt.wantCode != 0:
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("OUT exists after failure (err=%v)", err)
				}
			case tt.wantTXID != 0:
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, fx.images[tt.wantTXID]) {
					t.Fatalf("OUT differs from the database at TXID %d", tt.wantTXID)
				}
				execSQL(t, out, "SELECT count(*) FROM t") // opens as a database
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		r := runBinary(t, arg)
		if r.code != 0 {
			t.Fatalf("%s: exit code %d, want 0", arg, r.code)
		}
		for _, s := range []string{"usage: ltxrestore [restore] -o OUT.db", "-txid N", "-if-db-not-exists", "-if-replica-exists", "-parallelism N", "Exit status", "2\tthe command line is invalid"} {
			if !strings.Contains(r.stdout, s) {
				t.Fatalf("%s: usage %q, want it to contain %q", arg, r.stdout, s)
			}
		}
	}
}

func TestParseTXID(t *testing.T) {
	tests := []struct {
		in   string
		want ltx.TXID
		ok   bool
	}{
		{"42", 42, true},
		{"0x2a", 42, true},
		{"0X2A", 42, true},
		{"000000000000002a", 42, true},
		{"0000000000000010", 16, true}, // 16 digits: hex
		{"18446744073709551615", 1<<64 - 1, true},
		{"", 0, false},
		{"0", 0, false},
		{"0x0", 0, false},
		{"0000000000000000", 0, false},
		{"0x", 0, false},
		{"-1", 0, false},
		{"2a", 0, false},
		{"18446744073709551616", 0, false},
	}
	for _, tt := range tests {
		got, err := parseTXID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseTXID(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestCLIVersion(t *testing.T) {
	for _, arg := range []string{"-version", "--version"} {
		r := runBinary(t, arg)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ltxrestore ") || len(strings.TrimSpace(r.stdout)) <= len("ltxrestore ") {
			t.Errorf("%s: exit %d, stdout %q; want 0 and \"ltxrestore VERSION\"", arg, r.code, r.stdout)
		}
	}
}
