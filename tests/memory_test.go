package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// TestLargeTransactionMemory (issue 10, item 5): one large transaction
// costs the host a bounded amount of memory whatever its size, on a
// directory replica and on S3 (a 300 MB one raised the writer's peak RSS
// to 126 MB on S3, against 14 MB without the extension: the upload was
// buffered), and its spool space comes back once it is shipped (the 292
// MB segment stayed until a later commit). LARGE_TXN_MB sets the size
// (default 100).
func TestLargeTransactionMemory(t *testing.T) {
	mb := envCount(t, "LARGE_TXN_MB", 100)
	const limitMB = 32 // added to the host's peak RSS by the extension
	rows := mb * 1024 * 1024 / 4000
	insert := fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "+
		"INSERT INTO big SELECT randomblob(4000) FROM n;", rows)
	srv := s3test.Start(t)
	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
	// run writes the transaction and returns the writer's peak RSS and,
	// after litestream_sync if sync, the bytes in its spool.
	run := func(t *testing.T, uri string, env []string, sync bool) (peakMB float64, spool int64) {
		_, db := newDB(t)
		p := startC(t, db, strings.ReplaceAll(uri, "DB", db), env)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE big(b BLOB);")
		p.must(insert)
		if sync {
			p.sync(300000)
			_ = filepath.Walk(filepath.Join(db+"-litestream", "spool"), func(_ string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					spool += fi.Size()
				}
				return nil
			})
		}
		peakMB = peakRSS(t, p.cmd.Process.Pid)
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
		return peakMB, spool
	}
	plain, _ := run(t, "file:DB", nil, false)
	for _, tc := range []struct{ name, uri string }{
		{"Directory", "file:DB?vfs=litestream"},
		{"S3", "file:DB?vfs=litestream&replica=s3://BUCKET/db&endpoint=" + srv.Endpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri := strings.ReplaceAll(tc.uri, "BUCKET", srv.NewBucket(t))
			peak, spool := run(t, uri, creds, true)
			t.Logf("%d MB transaction: writer peak RSS %.1f MB with the extension (%s replica), %.1f MB without: %.1f MB added (limit %d)",
				mb, peak, tc.name, plain, peak-plain, limitMB)
			if peak-plain > limitMB {
				t.Errorf("the extension added %.1f MB to the writer's peak RSS, want at most %d", peak-plain, limitMB)
			}
			if spool > 4<<20 {
				t.Errorf("the spool holds %d bytes once the transaction is in the replica", spool)
			}
		})
	}
}

// peakRSS returns the peak resident set size (VmHWM) of process pid in MB.
func peakRSS(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestManySmallTransactionsMemory: a burst of small transactions ships as
// merged uploads (several spool records in one object, of a size not known
// in advance), and each used to be read into a 16 MiB buffer before its
// PUT: 20,000 single-row transactions on S3 peaked at 55 MiB in the
// writer against 15 MiB plain (tests/bench/compare.sh). The same limit as
// a large transaction's.
func TestManySmallTransactionsMemory(t *testing.T) {
	const limitMB = 32
	srv := s3test.Start(t)
	creds := []string{"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey, "LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey}
	batch := strings.Repeat("INSERT INTO t(v) VALUES (randomblob(100));", 500)
	run := func(uri string, env []string, ext bool) float64 {
		_, db := newDB(t)
		p := startC(t, db, strings.ReplaceAll(uri, "DB", db), env)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);")
		for i := 0; i < 40; i++ {
			p.must(batch) // 500 transactions
		}
		if ext {
			p.sync(60000)
		}
		peak := peakRSS(t, p.cmd.Process.Pid)
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
		return peak
	}
	plain := run("file:DB", nil, false)
	peak := run("file:DB?vfs=litestream&replica=s3://"+srv.NewBucket(t)+"/db&endpoint="+srv.Endpoint, creds, true)
	t.Logf("20,000 transactions on S3: writer peak RSS %.1f MB with the extension, %.1f MB without: %.1f MB added (limit %d)", peak, plain, peak-plain, limitMB)
	if peak-plain > limitMB {
		t.Errorf("the extension added %.1f MB to the writer's peak RSS, want at most %d", peak-plain, limitMB)
	}
}
