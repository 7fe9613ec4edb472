package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// TestDocs runs every ```sh block of README.md and docs/*.md, in order, one
// temporary directory per file (a user following that page), so that the
// docs cannot drift from the code. A block fails on a non-zero exit (each
// runs under `bash -euo pipefail`) or an "Error:" line from the sqlite3
// shell on stderr; an ```output block right after it must equal its
// stdout. Synopses and examples meant only to be read are ```text.
//
// The directory looks like a built checkout: ./litestream_vfs.so and
// bin/ltxrestore; PATH is the test's own (the blocks name
// /usr/bin/python3: a pyenv python3 first on PATH cannot load
// extensions, which a user following the docs hit). A MinIO server
// runs with MinIO's default credentials (minioadmin/minioadmin) and a
// bucket my-bucket, as the docs set up; its address replaces the docs'
// 127.0.0.1:9000, and a free port the metrics address 127.0.0.1:9090:
// the one thing a block is not run as written with.
func TestDocs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	srv := s3test.StartWith(t, s3test.Options{AccessKey: "minioadmin", SecretKey: "minioadmin"})
	srv.CreateBucket(t, "my-bucket")
	endpoint := strings.TrimPrefix(srv.Endpoint, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	subst := strings.NewReplacer("127.0.0.1:9000", endpoint, "127.0.0.1:9090", metricsAddr)
	total := 0
	for _, file := range files {
		blocks, err := shellBlocks(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, file)
		if rel == "README.md" && len(blocks) > 0 && strings.Contains(blocks[0].code, "./tests/run.sh") {
			blocks = blocks[1:] // the set-up commands: CI runs them (this test is part of the second)
		}
		if len(blocks) == 0 {
			continue
		}
		total += len(blocks)
		t.Run(rel, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Symlink(extPath+".so", filepath.Join(dir, "litestream_vfs.so")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(ltxrestorePath, filepath.Join(dir, "bin", "ltxrestore")); err != nil {
				t.Fatal(err)
			}
			env := []string{"HOME=" + dir}
			for _, b := range blocks {
				script := "set -euo pipefail\n" + subst.Replace(b.code)
				start := time.Now()
				r := runCmd(t, dir, env, strings.NewReader(""), "bash", "-c", script)
				where := fmt.Sprintf("%s:%d", rel, b.line)
				if r.Code != 0 || strings.Contains(r.Stderr, "Error:") {
					t.Fatalf("%s: the block failed\n%s\n%s", where, b.code, r)
				}
				if b.output != nil && strings.TrimSpace(r.Stdout) != strings.TrimSpace(*b.output) {
					t.Errorf("%s: output\n%s\nwant (the ```output block after it)\n%s", where, r.Stdout, *b.output)
				}
				t.Logf("%s: ok in %v", where, time.Since(start).Round(time.Millisecond))
			}
		})
	}
	if total < 10 {
		t.Errorf("%d shell blocks in README.md and docs/*.md: the extraction is broken", total)
	}
}

type shellBlock struct {
	line   int
	code   string
	output *string // the ```output block that follows, if any
}

// shellBlocks returns the ```sh blocks of a Markdown file, each with the
// ```output block right after it (only blank lines between).
func shellBlocks(path string) ([]shellBlock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var blocks []shellBlock
	var cur *strings.Builder
	lang, start, n := "", 0, 0
	afterSh := false // only blank lines since the last sh block closed
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			lang, start, cur = strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), n, &strings.Builder{}
		case cur != nil && trimmed == "```":
			code := cur.String()
			switch {
			case lang == "sh" || lang == "bash":
				blocks = append(blocks, shellBlock{line: start, code: code})
				afterSh = true
				cur = nil
				continue
			case lang == "output" && afterSh:
				blocks[len(blocks)-1].output = &code
			case lang == "output":
				return nil, fmt.Errorf("%s:%d: an output block not right after a sh block", path, start)
			}
			afterSh, cur = false, nil
		case cur != nil:
			cur.WriteString(line)
			cur.WriteByte('\n')
		case trimmed != "":
			afterSh = false
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: unclosed code block", path, start)
	}
	return blocks, sc.Err()
}
