package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCLIReplicaEntries: what a directory replica holds besides LTX files.
// A valid LTX file reached through a symlink is restored (it was skipped,
// giving the older state with exit 0 and verify ok); an entry with an LTX
// name that cannot be one fails the restore, naming it (it was silently
// ignored); entries that are not LTX names are skipped and reported.
func TestCLIReplicaEntries(t *testing.T) {
	const second = "0000000000000002-0000000000000002.ltx"
	tests := []struct {
		name     string
		prepare  func(t *testing.T, levelDir string)
		wantCode int
		wantTXID int      // restored image; 0: no output
		wantErr  []string // substrings of stderr
	}{
		{"SymlinkedLTX", func(t *testing.T, levelDir string) {
			moved := filepath.Join(filepath.Dir(filepath.Dir(levelDir)), "moved.ltx")
			if err := os.Rename(filepath.Join(levelDir, second), moved); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(moved, filepath.Join(levelDir, second)); err != nil {
				t.Fatal(err)
			}
		}, 0, 2, []string{"restored TXID 2"}},
		{"FIFONamedLTX", func(t *testing.T, levelDir string) {
			if err := syscall.Mkfifo(filepath.Join(levelDir, "0000000000000003-0000000000000003.ltx"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1, 0, []string{"0000000000000003-0000000000000003.ltx: not a regular file (a named pipe)"}},
		{"DirectoryNamedLTX", func(t *testing.T, levelDir string) {
			if err := os.Mkdir(filepath.Join(levelDir, "0000000000000003-0000000000000003.ltx"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, 1, 0, []string{"not a regular file (a directory)"}},
		{"SymlinkLoop", func(t *testing.T, levelDir string) {
			p := filepath.Join(levelDir, "0000000000000003-0000000000000003.ltx")
			if err := os.Symlink(p, p); err != nil {
				t.Fatal(err)
			}
		}, 1, 0, []string{"a symlink that does not resolve"}},
		{"OtherNames", func(t *testing.T, levelDir string) {
			for _, n := range []string{"README", "0000000000000003-0000000000000003.ltx.abc.tmp"} {
				if err := os.WriteFile(filepath.Join(levelDir, n), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, 0, 2, []string{"skipped " + "", "README: not an LTX file name", ".tmp: an upload in progress"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newSQLiteFixture(t)
			tt.prepare(t, filepath.Join(fx.dir, "ltx", "0"))
			out := filepath.Join(t.TempDir(), "out.db")
			r := runBinary(t, "-o", out, fx.dir)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q, want it to contain %q", r.stderr, w)
				}
			}
			got, err := os.ReadFile(out)
			if tt.wantTXID == 0 {
				if err == nil {
					t.Fatal("OUT written by a failed restore")
				}
				return
			}
			if err != nil || !bytes.Equal(got, fx.images[2]) {
				t.Fatalf("OUT is not the database at TXID 2 (%v)", err)
			}
			// verify agrees with the restore.
			v := runBinary(t, "verify", fx.dir)
			if v.code != 0 || !strings.Contains(v.stdout, "ok") {
				t.Fatalf("verify exit %d: %s%s", v.code, v.stdout, v.stderr)
			}
		})
	}
}
