package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogFile: LITESTREAM_LOG_FILE takes the extension's log lines off
// stderr (the host's); one that cannot be opened leaves them on stderr,
// saying so, and the database opens all the same.
func TestLogFile(t *testing.T) {
	lines := []string{"PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);", syncLine(20000)}
	t.Run("Text", func(t *testing.T) {
		dir, db := newDB(t)
		logFile := filepath.Join(dir, "ls.log")
		r := runC(t, dir, dbURI(db), lines, []string{"LITESTREAM_LOG_LEVEL=info", "LITESTREAM_LOG_FILE=" + logFile})
		requireNoErr(t, "client", splitLines(r.Stdout), r)
		b, err := os.ReadFile(logFile)
		if err != nil || !strings.Contains(string(b), "component=litestream") || !strings.Contains(string(b), "msg=snapshot") {
			t.Errorf("log file (%v):\n%s", err, b)
		}
		if strings.Contains(r.Stderr, "component=litestream") {
			t.Errorf("log lines on stderr with LITESTREAM_LOG_FILE set:\n%s", r.Stderr)
		}
	})
	t.Run("CannotOpen", func(t *testing.T) {
		dir, db := newDB(t)
		r := runC(t, dir, dbURI(db), lines, []string{"LITESTREAM_LOG_FILE=" + filepath.Join(dir, "no-such-dir", "ls.log")})
		requireNoErr(t, "client", splitLines(r.Stdout), r)
		if !strings.Contains(r.Stderr, "LITESTREAM_LOG_FILE cannot be opened") {
			t.Errorf("no warning on stderr for a log file that cannot be opened:\n%s", r.Stderr)
		}
	})
}
