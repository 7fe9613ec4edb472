package s3test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of the MinIO server binary,
// <repo>/.cache/bin/minio, installing it first if it is missing. The
// result is computed once per process.
func Binary() (string, error) {
	binary.once.Do(func() { binary.path, binary.err = findOrInstall() })
	return binary.path, binary.err
}

// RepoRoot returns the module root: the nearest directory at or above the
// working directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// findOrInstall returns <repo>/.cache/bin/minio, running "go install" into
// that directory if the file is missing. It holds an exclusive lock on
// <repo>/.cache/bin/minio.lock while checking and installing, so parallel
// test binaries wait for one install instead of racing.
func findOrInstall() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, ".cache", "bin")
	bin := filepath.Join(binDir, "minio")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", binDir, err)
	}
	unlock, err := lockFile(bin + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()

	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("stat %s: %w", bin, err)
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("install minio: %s is missing and no go command: %w", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	pkg := MinioModule + "@" + MinioVersion
	cmd := exec.CommandContext(ctx, goBin, "install", pkg)
	cmd.Dir = binDir // outside any module's vendoring or replace directives
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOFLAGS=", "CGO_ENABLED=0")
	fmt.Fprintf(os.Stderr, "s3test: %s missing; running GOBIN=%s go install %s (takes minutes)\n", bin, binDir, pkg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("install minio: go install %s: %w\n%s", pkg, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("install minio: %w", err)
	}
	return bin, nil
}
