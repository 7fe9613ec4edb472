package file_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestClientLTXFilesIgnores(t *testing.T) {
	dir := t.TempDir()
	c := file.NewClient(dir)
	if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatalf("WriteLTXFile: %v", err)
	}
	levelDir := filepath.Join(dir, "ltx", "0")
	for _, name := range []string{
		"0000000000000001-0000000000000001.ltx.tmp",
		"0000000000000003-0000000000000003.ltx.123.tmp",
		"0000000000000004-0000000000000004.LTX",
		"00000000000000005-0000000000000005.ltx",
		"notes.txt",
		".DS_Store",
	} {
		if err := os.WriteFile(filepath.Join(levelDir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(levelDir, "0000000000000006-0000000000000006.ltx"), 0o755); err != nil {
		t.Fatal(err)
	}
	infos, err := c.LTXFiles(context.Background(), 0)
	if err != nil {
		t.Fatalf("LTXFiles: %v", err)
	}
	if len(infos) != 1 || infos[0].MinTXID != 2 {
		t.Fatalf("LTXFiles = %d files, want only 2-2", len(infos))
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
