// Package gotool finds, or installs with "go install" into <repo>/.cache/bin,
// the programs the tests run beside the project: a MinIO server, the
// Litestream CLI. Installs are cached between runs and serialized with a
// file lock, so parallel test binaries wait for one install instead of
// racing.
package gotool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// InstallTimeout bounds one "go install".
const InstallTimeout = 15 * time.Minute

var (
	mu    sync.Mutex
	found = map[string]string{}
)

// Binary returns <repo>/.cache/bin/NAME, running
// "GOBIN=<repo>/.cache/bin go install PKG@VERSION" first if it is missing.
// A found path is remembered for the life of the process.
func Binary(name, pkg, version string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if p, ok := found[name]; ok {
		return p, nil
	}
	p, err := findOrInstall(name, pkg, version)
	if err == nil {
		found[name] = p
	}
	return p, err
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

func findOrInstall(name, pkg, version string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, ".cache", "bin")
	bin := filepath.Join(binDir, name)
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
		return "", fmt.Errorf("install %s: %s is missing and there is no go command: %w", name, bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), InstallTimeout)
	defer cancel()
	target := pkg + "@" + version
	cmd := exec.CommandContext(ctx, goBin, "install", target)
	cmd.Dir = binDir // outside any module's vendoring or replace directives
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOFLAGS=", "CGO_ENABLED=0")
	fmt.Fprintf(os.Stderr, "gotool: %s missing; running GOBIN=%s go install %s (takes minutes)\n", bin, binDir, target)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("install %s: go install %s: %w\n%s", name, target, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	return bin, nil
}
