package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMigrateFromLitestream is docs/operations.md's migration, both ways,
// on one directory replica: `litestream replicate` (0.5.16) ships a
// database; it is stopped and the extension, loaded on the same replica
// with checksums=false, continues it (or snapshots, saying why); then the
// extension's processes exit and `litestream replicate` runs again, on a
// new replica path (see below why not the same one). After each leg both
// `litestream restore` and ltxrestore restore the source.
func TestMigrateFromLitestream(t *testing.T) {
	ls := litestreamBin(t)
	dir, db := newDB(t)
	rep := filepath.Join(dir, "replica")
	cfg := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(cfg, []byte("dbs:\n  - path: "+db+"\n    replicas:\n      - url: "+fileURL(rep)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := func() int {
		n := 0
		for _, lvl := range []string{"0", "9"} {
			m, _ := filepath.Glob(filepath.Join(rep, "ltx", lvl, "*.ltx"))
			n += len(m)
		}
		return n
	}
	sidecar := func(rows int) {
		t.Helper()
		cmd := exec.Command(ls, "replicate", "-config", cfg)
		cmd.Dir = dir
		var logs strings.Builder
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}()
		for i := 0; i < rows; i++ {
			before := files()
			sqlitePlain(t, db, "INSERT INTO t(b) SELECT randomblob(300) FROM generate_series(1, 20);")
			deadline := time.Now().Add(30 * time.Second)
			for files() <= before {
				if time.Now().After(deadline) {
					t.Fatalf("litestream replicate did not ship write %d in 30 s\n%s", i, logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	restoreBoth := func(leg string) {
		t.Helper()
		want := dumpHash(t, db)
		out := filepath.Join(t.TempDir(), "ours.db")
		if r := runCmd(t, dir, nil, nil, ltxrestorePath, "-o", out, fileURL(rep)); r.Code != 0 {
			t.Fatalf("%s: ltxrestore\n%s", leg, r)
		} else if got := dumpHash(t, out); got != want {
			t.Errorf("%s: ltxrestore restored %s, source %s", leg, got, want)
		}
		out = filepath.Join(t.TempDir(), "theirs.db")
		if r := runCmd(t, dir, nil, nil, ls, "restore", "-o", out, fileURL(rep)); r.Code != 0 {
			t.Fatalf("%s: litestream restore\n%s", leg, r)
		} else if got := dumpHash(t, out); got != want {
			t.Errorf("%s: litestream restore restored %s, source %s", leg, got, want)
		}
	}

	sqlitePlain(t, db, "PRAGMA journal_mode=WAL; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
	sidecar(3)
	restoreBoth("Litestream")

	// The extension on the same replica (Litestream's LTX files have no
	// checksums, so neither may ours).
	uri := dbURI(db, "replica="+fileURL(rep), "checksums=false")
	p := startC(t, db, uri, []string{"LITESTREAM_LOG_LEVEL=info"})
	for i := 0; i < 5; i++ {
		p.must("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 20) INSERT INTO t(b) SELECT randomblob(300) FROM s;")
	}
	p.sync(30000)
	r := p.close()
	if r.Code != 0 {
		t.Fatalf("extension exit\n%s", r)
	}
	// A snapshot, saying why: Litestream's files carry no checksum.
	if line := firstMatching(r.Stderr, "snapshot needed", "resumed"); !strings.Contains(line, "is unknown") {
		t.Errorf("the extension on Litestream's replica: want a snapshot saying the replica's checksum is unknown, got %s", line)
	}
	restoreBoth("extension after Litestream")

	// And back to the sidecar, on a new replica path: Litestream 0.5.16
	// cannot continue a replica another writer extended. With its local
	// state (.<db>-litestream) it finds the replica ahead and fails every
	// sync ("cannot verify wal state: open ltx file …"); without it, it
	// checks the WAL offset in the last LTX header, which the extension
	// does not record ("prev WAL offset is less than the header size"),
	// and its level-1 compaction refuses the level-0 gap the extension's
	// snapshot leaves. Either way it ships nothing. The old path stays
	// restorable by both tools (above).
	oldRep := rep
	rep = filepath.Join(dir, "replica-2")
	if err := os.WriteFile(cfg, []byte("dbs:\n  - path: "+db+"\n    replicas:\n      - url: "+fileURL(rep)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sidecar(3)
	restoreBoth("Litestream after the extension")
	if r := runCmd(t, dir, nil, nil, ltxrestorePath, "verify", fileURL(oldRep)); r.Code != 0 {
		t.Errorf("the extension's replica after the move back\n%s", r)
	}
}

// firstMatching returns the first line of s containing any of words.
func firstMatching(s string, words ...string) string {
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				return l
			}
		}
	}
	return "(no line with " + strings.Join(words, " or ") + ")"
}
