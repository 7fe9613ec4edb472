package file_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
)

func TestClient(t *testing.T) {
	replicatest.RunClientTests(t, func(t *testing.T) replica.Client {
		dir := t.TempDir()
		t.Cleanup(func() { assertNoTmpFiles(t, dir) })
		return file.NewClient(filepath.Join(dir, "replica"))
	})
}

// assertNoTmpFiles fails if any in-progress file is left under dir.
func assertNoTmpFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".tmp") {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
}

func TestClientLayout(t *testing.T) {
	dir := t.TempDir()
	c := file.NewClient(dir)
	if _, err := c.WriteLTXFile(context.Background(), 9, 1, 0x2a, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatalf("WriteLTXFile: %v", err)
	}
	path := filepath.Join(dir, "ltx", "9", "0000000000000001-000000000000002a.ltx")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if got, want := c.String(), "file://"+filepath.ToSlash(dir); got != want {
		t.Fatalf("String()=%q, want %q", got, want)
	}
	if got, want := c.Type(), "file"; got != want {
		t.Fatalf("Type()=%q, want %q", got, want)
	}
}

// TestClientLTXFilesSkips: names that are not LTX file names are skipped,
// and each is reported.
func TestClientLTXFilesSkips(t *testing.T) {
	dir := t.TempDir()
	var skipped []string
	c := file.NewClient(dir)
	c.OnSkip = func(path, why string) { skipped = append(skipped, filepath.Base(path)+": "+why) }
	if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatalf("WriteLTXFile: %v", err)
	}
	levelDir := filepath.Join(dir, "ltx", "0")
	names := []string{
		"0000000000000001-0000000000000001.ltx.tmp",
		"0000000000000003-0000000000000003.ltx.123.tmp",
		"0000000000000004-0000000000000004.LTX",
		"00000000000000005-0000000000000005.ltx",
		"notes.txt",
		".DS_Store",
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(levelDir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := c.LTXFiles(context.Background(), 0)
	if err != nil {
		t.Fatalf("LTXFiles: %v", err)
	}
	if len(infos) != 1 || infos[0].MinTXID != 2 {
		t.Fatalf("LTXFiles = %d files, want only 2-2", len(infos))
	}
	if len(skipped) != len(names) {
		t.Fatalf("reported skips %q, want one for each of %q", skipped, names)
	}
}

// TestClientLTXFilesEntries: an entry with an LTX file name is a regular
// file or a symlink to one (followed); anything else is an error naming
// it, never a silently shorter history (a restore of an older state).
func TestClientLTXFilesEntries(t *testing.T) {
	const name = "0000000000000003-0000000000000003.ltx"
	tests := []struct {
		name    string
		make    func(t *testing.T, levelDir, path string)
		wantErr string // "" : listed with the other file
	}{
		{"Regular", func(t *testing.T, _, path string) { writeFile(t, path) }, ""},
		{"SymlinkToRegular", func(t *testing.T, levelDir, path string) {
			target := filepath.Join(filepath.Dir(filepath.Dir(levelDir)), "elsewhere.bin")
			writeFile(t, target)
			symlink(t, target, path)
		}, ""},
		{"SymlinkLoop", func(t *testing.T, _, path string) { symlink(t, path, path) }, "a symlink that does not resolve"},
		{"SymlinkDangling", func(t *testing.T, levelDir, path string) { symlink(t, filepath.Join(levelDir, "gone"), path) }, "a symlink to nothing"},
		{"SymlinkToDirectory", func(t *testing.T, levelDir, path string) { symlink(t, levelDir, path) }, "not a regular file (a directory)"},
		{"Directory", func(t *testing.T, _, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a directory)"},
		{"FIFO", func(t *testing.T, _, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a named pipe)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := file.NewClient(dir)
			if _, err := c.WriteLTXFile(context.Background(), 0, 1, 2, bytes.NewReader([]byte("x"))); err != nil {
				t.Fatal(err)
			}
			levelDir := filepath.Join(dir, "ltx", "0")
			tt.make(t, levelDir, filepath.Join(levelDir, name))
			infos, err := c.LTXFiles(context.Background(), 0)
			if tt.wantErr == "" {
				if err != nil || len(infos) != 2 || infos[1].MinTXID != 3 || infos[1].Size != 1 {
					t.Fatalf("LTXFiles = %v, %v; want 1-2 and 3-3 (1 byte)", infos, err)
				}
				return
			}
			if err == nil || !errors.Is(err, replica.ErrInvalidEntry) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LTXFiles error %v, want ErrInvalidEntry naming %s: %s", err, name, tt.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func TestClientMissingDir(t *testing.T) {
	c := file.NewClient(filepath.Join(t.TempDir(), "does", "not", "exist"))
	infos, err := c.LTXFiles(context.Background(), 0)
	if err != nil {
		t.Fatalf("LTXFiles: %v", err)
	}
	if infos == nil || len(infos) != 0 {
		t.Fatalf("LTXFiles = %v, want empty non-nil slice", infos)
	}
}

func TestClientWriteUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	c := file.NewClient(filepath.Join(dir, "replica"))
	if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader([]byte("x"))); err == nil {
		t.Fatal("WriteLTXFile into read-only dir succeeded")
	}
}

// TestClientRemovePartial: the temporary files of uploads whose process was
// killed are removed from every level; LTX files, other names and a
// directory with the temporary suffix are left alone.
func TestClientRemovePartial(t *testing.T) {
	dir := t.TempDir()
	c := file.NewClient(dir)
	ctx := context.Background()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ltx/0/0000000000000002-0000000000000002.ltx.123.tmp")
	write("ltx/9/0000000000000001-0000000000000002.ltx.456.tmp")
	write("ltx/0/notes.txt")
	if err := os.Mkdir(filepath.Join(dir, "ltx/0/kept.tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := c.RemovePartial(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RemovePartial = %d, %v; want 2, nil", n, err)
	}
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			left = append(left, rel)
		}
		return nil
	})
	want := "ltx ltx/0 ltx/0/0000000000000001-0000000000000001.ltx ltx/0/kept.tmp ltx/0/notes.txt ltx/9"
	if got := strings.Join(left, " "); got != want {
		t.Fatalf("left %q, want %q", got, want)
	}
	if n, err := file.NewClient(filepath.Join(dir, "missing")).RemovePartial(ctx); err != nil || n != 0 {
		t.Fatalf("RemovePartial of a missing directory = %d, %v", n, err)
	}
}

// TestClientDeleteStopsAtFailure: files go in the order given and none
// after one that cannot be removed (expiry orders them so that what is
// left still restores; deleting on past a failure left a hole).
func TestClientDeleteStopsAtFailure(t *testing.T) {
	dir := t.TempDir()
	c := file.NewClient(dir)
	ctx := context.Background()
	var infos []*ltx.FileInfo
	for txid := ltx.TXID(2); txid <= 4; txid++ {
		if _, err := c.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		infos = append(infos, &ltx.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid})
	}
	// TXID 3's file becomes a non-empty directory: it cannot be removed.
	p := filepath.Join(dir, replica.LTXFilePath(0, 3, 3))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	newestFirst := []*ltx.FileInfo{infos[2], infos[1], infos[0]}
	if err := c.DeleteLTXFiles(ctx, newestFirst); err == nil {
		t.Fatal("DeleteLTXFiles with an unremovable file succeeded")
	}
	exists := func(txid ltx.TXID) bool {
		_, err := os.Stat(filepath.Join(dir, replica.LTXFilePath(0, txid, txid)))
		return err == nil
	}
	if exists(4) || !exists(2) {
		t.Fatalf("TXID 4's file left: %v, TXID 2's: %v; want 4 deleted, 3 failed, 2 not tried", exists(4), exists(2))
	}
}
