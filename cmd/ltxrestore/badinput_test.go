package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
)

// foreignL0Replica returns a replica whose TXID 2 comes from another
// database.
func foreignL0Replica(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	c := file.NewClient(dir)
	db := replicatest.NewDB(pageSize)
	replicatest.WriteFile(t, c, 0, db.Tx(t, 3, db.Pages(1, 1, 2, 3)))
	other := replicatest.NewDB(pageSize)
	other.Tx(t, 3, other.Pages(7, 1, 2, 3))
	replicatest.WriteFile(t, c, 0, other.Tx(t, 3, other.Pages(8, 2)))
	return dir
}

// foreignSnapshotReplica returns a replica whose snapshot has page size
// 512 and whose next file has pageSize.
func foreignSnapshotReplica(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	c := file.NewClient(dir)
	other := replicatest.NewDB(512)
	replicatest.WriteFile(t, c, 9, other.Tx(t, 3, other.Pages(1, 1, 2, 3)))
	db := replicatest.NewDB(pageSize)
	db.Tx(t, 3, db.Pages(1, 1, 2, 3))
	replicatest.WriteFile(t, c, 0, db.Tx(t, 3, db.Pages(2, 2)))
	return dir
}

// TestCLIBadInput checks that each failure exits 1 with one stderr line
// naming the cause and leaves neither OUT nor a temporary file.
func TestCLIBadInput(t *testing.T) {
	fx := newSQLiteFixture(t)
	tests := []struct {
		name    string
		replica string
		out     func(t *testing.T, dir string) string // OUT inside dir
		wantErr []string
	}{
		{
			name:    "OutputParentIsFile",
			replica: fx.dir,
			out: func(t *testing.T, dir string) string {
				parent := filepath.Join(dir, "file")
				if err := os.WriteFile(parent, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(parent, "out.db")
			},
			wantErr: []string{"ltxrestore: stat output directory: ", "file: not a directory"},
		},
		{
			name:    "OutputParentMissing",
			replica: fx.dir,
			out:     func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", "out.db") },
			wantErr: []string{"ltxrestore: stat output directory: ", "no such file or directory"},
		},
		{
			name:    "ForeignL0",
			replica: foreignL0Replica(t),
			wantErr: []string{"ltxrestore: checksum mismatch: ltx/0/0000000000000002-0000000000000002.ltx: txid 0000000000000002: pre-apply checksum"},
		},
		{
			name:    "ForeignSnapshotPageSize",
			replica: foreignSnapshotReplica(t),
			wantErr: []string{"ltxrestore: invalid ltx file: ltx/0/0000000000000002-0000000000000002.ltx: txid 0000000000000002: page size 4096",
				"(last ltx/9/0000000000000001-0000000000000001.ltx) have 512"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			if tt.out != nil {
				out = tt.out(t, dir)
			}
			before, _ := os.ReadDir(dir)
			r := runBinary(t, "-o", out, tt.replica)
			if r.code != exitFailed {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, exitFailed, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q, want it to contain %q", r.stderr, s)
				}
			}
			if got := strings.Count(r.stderr, "\n"); got != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", got, r.stderr)
			}
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("OUT exists after failure")
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("files left behind: %v", after)
			}
		})
	}
}

// TestCLISignal interrupts a restore whose reads are slowed by
// readDelayEnv and checks that it exits 1 and cleans up.
func TestCLISignal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	fx := newSQLiteFixture(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			cmd := exec.Command(binary, "-o", out, fx.dir)
			cmd.Env = append(os.Environ(), readDelayEnv+"=1h")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			// Wait for the restore to be under way: its temp file exists.
			for deadline := time.Now().Add(10 * time.Second); ; {
				if m, _ := filepath.Glob(out + ".tmp-*"); len(m) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no temporary file appeared")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFailed {
				t.Fatalf("wait: %v, want exit code %d; stderr:\n%s", err, exitFailed, stderr.String())
			}
			// What the restore was doing when the signal came (opening a
			// file, say) may come before the cause.
			want := regexp.MustCompile(`^ltxrestore: interrupted: (.+: )?context canceled; nothing written to ` + regexp.QuoteMeta(out) + "\n$")
			if got := stderr.String(); !want.MatchString(got) {
				t.Errorf("stderr %q, want it to match %s", got, want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("files left behind: %v", entries)
			}
		})
	}
}
