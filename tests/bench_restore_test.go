package tests

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// BenchmarkRestore times issue 5's restore figures on one replica held both
// in a directory and in a real MinIO (the same LTX files), in one run:
//
//	RESTORE_BENCH_MB=1024 go test -run '^$' -bench Restore -benchtime 1x ./tests/
//
// It builds a database of RESTORE_BENCH_MB (default 256) of incompressible
// rows with plain sqlite3, replicates it through the extension (a snapshot
// and 12 update transactions, checksums=false so Litestream can read it
// too), copies the files into a bucket, and reports the seconds of each
// command, with cp of the database file as the yardstick.
func BenchmarkRestore(b *testing.B) {
	sizeMB := envCount(b, "RESTORE_BENCH_MB", 256)
	srv := s3test.Start(b)
	ls := litestreamBin(b)
	dir := b.TempDir()
	db := filepath.Join(dir, "app.db")
	rows := sizeMB * 1024 / 4
	sqlitePlain(b, db, fmt.Sprintf("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB); "+
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO t(b) SELECT randomblob(3900) FROM c; "+
		"PRAGMA wal_checkpoint(TRUNCATE);", rows))
	lines := []string{syncLine(600000)}
	for i := 1; i <= 12; i++ {
		lines = append(lines, fmt.Sprintf("UPDATE t SET b = randomblob(3900) WHERE id %% 97 = %d;", i), syncLine(600000))
	}
	shellWrite(b, db, dbURI(db, "checksums=false"), lines, shellOpts{})

	// The same files into MinIO.
	rep := file.NewClient(defaultReplica(db))
	bucket := srv.NewBucket(b)
	s3c := srv.Client(b, bucket, "db")
	ctx := context.Background()
	var files, bytes int64
	for _, level := range []int{0, replica.SnapshotLevel} {
		infos, err := rep.LTXFiles(ctx, level)
		if err != nil {
			b.Fatal(err)
		}
		for _, info := range infos {
			rc, err := rep.OpenLTXFile(ctx, level, info.MinTXID, info.MaxTXID)
			if err != nil {
				b.Fatal(err)
			}
			_, err = s3c.WriteLTXFile(ctx, level, info.MinTXID, info.MaxTXID, rc)
			_ = rc.Close()
			if err != nil {
				b.Fatal(err)
			}
			files++
			bytes += info.Size
		}
	}
	fi, err := os.Stat(db)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("database %d MiB; replica %d LTX files, %d MiB", fi.Size()>>20, files, bytes>>20)

	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
	s3URL := "s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint)
	cfg := filepath.Join(dir, "litestream.yml")
	yml := "dbs:\n  - path: " + db + "\n    replicas:\n      - type: s3\n        bucket: " + bucket +
		"\n        path: db\n        endpoint: " + srv.Endpoint + "\n        force-path-style: true\n" +
		"        access-key-id: " + srv.AccessKey + "\n        secret-access-key: " + srv.SecretKey + "\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "out.db")
	type cmdCase struct {
		name string
		env  []string
		args []string
	}
	cases := []cmdCase{
		{"cp", nil, []string{"cp", db, out}},
		{"cp_fsync", nil, []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", db, out}},
		{"ltxrestore_file", nil, []string{ltxrestorePath, "-o", out, fileURL(defaultReplica(db))}},
		{"ltxrestore_s3", creds, []string{ltxrestorePath, "-o", out, s3URL}},
		{"ltxrestore_s3_nocheck", creds, []string{ltxrestorePath, "-no-integrity-check", "-o", out, s3URL}},
		{"litestream_file", nil, []string{ls, "restore", "-o", out, fileURL(defaultReplica(db))}},
		{"litestream_s3", nil, []string{ls, "restore", "-config", cfg, "-o", out, db}},
	}
	for i := 0; i < b.N; i++ {
		for _, c := range cases {
			_ = os.Remove(out)
			cmd := exec.Command(c.args[0], c.args[1:]...)
			cmd.Dir = dir
			cmd.Env = append(lsSafeEnv(), c.env...)
			t0 := time.Now()
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v\n%s", c.name, err, o)
			}
			secs := time.Since(t0).Seconds()
			b.ReportMetric(secs, c.name+"_s")
			b.Logf("%-22s %6.2f s %7.0f MB/s", c.name, secs, float64(fi.Size())/1e6/secs)
		}
	}
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		b.Fatal(err)
	}
}

// lsSafeEnv is the environment without LITESTREAM_* variables and without
// AWS_CA_BUNDLE, which Litestream's AWS SDK refuses to start with.
func lsSafeEnv() []string {
	var env []string
	for _, kv := range childEnv(nil) {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			env = append(env, kv)
		}
	}
	return env
}
