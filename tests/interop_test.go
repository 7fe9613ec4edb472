package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/gotool"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// litestreamBin returns the Litestream 0.5.16 CLI, installed into
// .cache/bin on first use (a few minutes cold).
func litestreamBin(t testing.TB) string {
	t.Helper()
	bin, err := gotool.Binary("litestream", "github.com/benbjohnson/litestream/cmd/litestream", "v0.5.16")
	if err != nil {
		t.Fatalf("litestream 0.5.16: %v", err)
	}
	return bin
}

// TestLitestreamInterop checks both directions with Litestream 0.5.16 on a
// directory replica: `litestream restore` reads what the extension wrote with
// checksums=false (Litestream rejects LTX files with checksums), and
// ltxrestore reads what `litestream replicate` wrote.
func TestLitestreamInterop(t *testing.T) {
	ls := litestreamBin(t)

	t.Run("LitestreamRestoresOurs", func(t *testing.T) {
		_, db := newDB(t)
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 40)...)
		shellWrite(t, db, dbURI(db, "checksums=false"), append(lines, syncLine(60000)), shellOpts{})
		out := filepath.Join(t.TempDir(), "restored.db")
		r := runCmd(t, filepath.Dir(out), nil, nil, ls, "restore", "-o", out, fileURL(defaultReplica(db)))
		if r.Code != 0 {
			t.Fatalf("litestream restore failed\n%s", r)
		}
		compareDBs(t, db, out)
	})

	t.Run("LitestreamRejectsChecksums", func(t *testing.T) {
		// The default keeps checksums; Litestream 0.5.16 refuses those files.
		// If this starts passing, the default can be revisited.
		_, db := newDB(t)
		shellWrite(t, db, dbURI(db), []string{"PRAGMA journal_mode=WAL;", "CREATE TABLE t(x);", "INSERT INTO t VALUES (1);", syncLine(60000)}, shellOpts{})
		out := filepath.Join(t.TempDir(), "restored.db")
		r := runCmd(t, filepath.Dir(out), nil, nil, ls, "restore", "-o", out, fileURL(defaultReplica(db)))
		if r.Code == 0 || !strings.Contains(r.Stderr, "checksum") {
			t.Errorf("litestream restore of a replica with checksums: want a checksum refusal\n%s", r)
		}
	})

	t.Run("WeRestoreLitestreams", func(t *testing.T) {
		dir, db := newDB(t)
		sqlitePlain(t, db, "PRAGMA journal_mode=WAL; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
		rep := filepath.Join(dir, "ls-replica")
		cfg := filepath.Join(dir, "litestream.yml")
		yml := "dbs:\n  - path: " + db + "\n    replicas:\n      - url: " + fileURL(rep) + "\n"
		if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(ls, "replicate", "-config", cfg)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
			}
		}
		t.Cleanup(stop)
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("litestream replicate: timed out waiting for %s", what)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		ltxCount := func() int {
			m, _ := filepath.Glob(filepath.Join(rep, "ltx", "0", "*.ltx"))
			return len(m)
		}
		waitFor("its first LTX file", func() bool { return ltxCount() > 0 })
		for i := 0; i < 5; i++ {
			before := ltxCount()
			sqlitePlain(t, db, "INSERT INTO t(b) SELECT randomblob(200) FROM generate_series(1, 50);")
			waitFor("the write to reach the replica", func() bool { return ltxCount() > before })
		}
		stop()
		out := filepath.Join(t.TempDir(), "restored.db")
		r := runCmd(t, filepath.Dir(out), nil, nil, ltxrestorePath, "-o", out, fileURL(rep))
		if r.Code != 0 {
			t.Fatalf("ltxrestore of a Litestream replica failed\n%s", r)
		}
		if !strings.Contains(r.Stderr, "without checksums") {
			t.Errorf("ltxrestore did not say that checksums could not be verified\n%s", r)
		}
		// Not compareDBs: Litestream's sidecar adds its _litestream_* tables
		// to the source, which compareDBs rightly forbids for the extension.
		if hs, hr := dumpHash(t, db), dumpHash(t, out); hs != hr {
			t.Errorf("restored .dump sha256 %s != source %s", hr, hs)
		}
		integrityCheck(t, out)
	})

	// The same both ways on S3 (a real MinIO): Litestream 0.5.16 names S3
	// objects <prefix>/<level %04x>/…, and so does the s3 replica client.
	// Litestream's AWS SDK refuses to start when AWS_CA_BUNDLE is set (this
	// machine sets it), so its environment drops that variable.
	t.Run("S3", func(t *testing.T) {
		srv := s3test.Start(t)
		creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
		bucket := srv.NewBucket(t)
		lsConfig := func(t *testing.T, db, prefix string) string {
			cfg := filepath.Join(t.TempDir(), "litestream.yml")
			yml := "dbs:\n  - path: " + db + "\n    replicas:\n      - type: s3\n        bucket: " + bucket +
				"\n        path: " + prefix + "\n        endpoint: " + srv.Endpoint + "\n        force-path-style: true\n" +
				"        access-key-id: " + srv.AccessKey + "\n        secret-access-key: " + srv.SecretKey + "\n"
			if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			return cfg
		}
		lsEnv := func() []string {
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
					env = append(env, kv)
				}
			}
			return env
		}

		t.Run("LitestreamRestoresOurs", func(t *testing.T) {
			_, db := newDB(t)
			lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(newSeed(t), 30)...)
			uri := dbURI(db, "checksums=false", "replica=s3://"+bucket+"/ours", "endpoint="+srv.Endpoint)
			shellWrite(t, db, uri, append(lines, syncLine(60000)), shellOpts{Env: creds})
			out := filepath.Join(t.TempDir(), "restored.db")
			cmd := exec.Command(ls, "restore", "-config", lsConfig(t, db, "ours"), "-o", out, db)
			cmd.Env = lsEnv()
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("litestream restore from S3: %v\n%s", err, b)
			}
			compareDBs(t, db, out)
		})

		t.Run("WeRestoreLitestreams", func(t *testing.T) {
			dir, db := newDB(t)
			sqlitePlain(t, db, "PRAGMA journal_mode=WAL; CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB);")
			cmd := exec.Command(ls, "replicate", "-config", lsConfig(t, db, "theirs"))
			cmd.Dir, cmd.Env = dir, lsEnv()
			var logs strings.Builder
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					_ = cmd.Process.Signal(os.Interrupt)
					_ = cmd.Wait()
				}
			}
			t.Cleanup(stop)
			client := srv.Client(t, bucket, "theirs")
			count := func() int {
				infos, err := client.LTXFiles(context.Background(), 0)
				if err != nil {
					return -1
				}
				return len(infos)
			}
			for i := 0; i < 3; i++ {
				before := count()
				sqlitePlain(t, db, "INSERT INTO t(b) SELECT randomblob(200) FROM generate_series(1, 50);")
				deadline := time.Now().Add(30 * time.Second)
				for count() <= before {
					if time.Now().After(deadline) {
						t.Fatalf("litestream replicate did not ship the write in 30 s\n%s", logs.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			stop()
			out := filepath.Join(t.TempDir(), "restored.db")
			u := "s3://" + bucket + "/theirs?endpoint=" + srv.Endpoint
			r := runCmd(t, filepath.Dir(out), creds, nil, ltxrestorePath, "-o", out, u)
			if r.Code != 0 {
				t.Fatalf("ltxrestore of Litestream's S3 replica failed\n%s\nlitestream:\n%s", r, logs.String())
			}
			if hs, hr := dumpHash(t, db), dumpHash(t, out); hs != hr {
				t.Errorf("restored .dump sha256 %s != source %s", hr, hs)
			}
			integrityCheck(t, out)
		})
	})
}
