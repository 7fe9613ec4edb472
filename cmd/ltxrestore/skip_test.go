package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/ltx"
)

// TestCLISkip covers -if-db-not-exists and -if-replica-exists.
func TestCLISkip(t *testing.T) {
	fx := newSQLiteFixture(t)
	missing := filepath.Join(t.TempDir(), "nope")
	emptyDir := filepath.Join(t.TempDir(), "empty")
	if err := os.MkdirAll(filepath.Join(emptyDir, "ltx", "0"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string // OUT is appended as "-o OUT"
		preexist bool     // create OUT before running
		wantCode int
		wantTXID ltx.TXID // restored content of OUT; 0: OUT as it was before
		wantErr  string   // the only stderr line, as a substring
	}{
		{name: "DBExists", args: []string{"-if-db-not-exists", fx.dir}, preexist: true,
			wantErr: " exists, skipping restore (-if-db-not-exists)"},
		{name: "DBExistsEmptyReplica", args: []string{"-if-db-not-exists", missing}, preexist: true,
			wantErr: "skipping restore (-if-db-not-exists)"},
		{name: "DBMissing", args: []string{"-if-db-not-exists", fx.dir},
			wantTXID: 2, wantErr: "restored TXID 2"},
		{name: "DBNotExistsWithForce", args: []string{"-f", "-if-db-not-exists", fx.dir}, wantCode: 2,
			wantErr: "-f and -if-db-not-exists are mutually exclusive"},
		{name: "ReplicaMissing", args: []string{"-if-replica-exists", missing},
			wantErr: "no ltx files in file://" + missing + ", skipping restore (-if-replica-exists)"},
		{name: "ReplicaEmptyDir", args: []string{"-if-replica-exists", emptyDir},
			wantErr: "skipping restore (-if-replica-exists)"},
		{name: "ReplicaEmptyOutputExists", args: []string{"-if-replica-exists", missing}, preexist: true,
			wantErr: "skipping restore (-if-replica-exists)"},
		{name: "ReplicaEmptyWithTimestamp", args: []string{"-if-replica-exists", "-timestamp", "2024-05-01T12:00:00Z", missing},
			wantErr: "skipping restore (-if-replica-exists)"},
		{name: "ReplicaExists", args: []string{"-if-replica-exists", fx.dir},
			wantTXID: 2, wantErr: "restored TXID 2"},
		{name: "ReplicaExistsOutputExists", args: []string{"-if-replica-exists", fx.dir}, preexist: true, wantCode: 1,
			wantErr: "ltxrestore: output file exists: "},
		{name: "ReplicaMissingWithoutFlag", args: []string{missing}, wantCode: 1,
			wantErr: "replica has no ltx files"},
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
			r := runBinary(t, append([]string{"-o", out}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tt.wantErr)
			}
			if tt.wantCode != exitUsage {
				if got := strings.Count(r.stderr, "\n"); got != 1 {
					t.Errorf("stderr has %d lines, want 1:\n%s", got, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(matches) > 0 {
				t.Fatalf("temporary files left behind: %v", matches)
			}
			got, err := os.ReadFile(out)
			switch {
			case tt.wantTXID != 0:
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, fx.images[tt.wantTXID]) {
					t.Fatalf("OUT differs from the database at TXID %d", tt.wantTXID)
				}
			case tt.preexist:
				if string(got) != old {
					t.Fatalf("OUT changed: %d bytes, %v", len(got), err)
				}
			default:
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("OUT exists (err=%v)", err)
				}
			}
		})
	}
}
