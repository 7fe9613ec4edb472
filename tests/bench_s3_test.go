package tests

import (
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// BenchmarkS3Replica runs tests/bench/bench.c against a real MinIO with the
// extension replicating to it, and reports issue 4's figures:
//
//	go test -run '^$' -bench S3Replica -benchtime 1x ./tests/
//
// lag_p50_ms/lag_p99_ms: litestream_sync latency after each of 200 commits
// 100 ms apart (10 txn/s): commit → object in the store. puts/s and
// rate_lag_p99_ms: 5 s of 1000 txn/s, uploads per second (from
// litestream_status) while a second connection calls litestream_sync in a
// loop, and its latency. Each under the default PUT budget and under
// max-puts-per-second=10 (the default before issue 12).
func BenchmarkS3Replica(b *testing.B) {
	srv := s3test.Start(b)
	bin := filepath.Join(b.TempDir(), "bench")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", bin,
		filepath.Join(repoRoot, "tests", "bench", "bench.c"), "-lsqlite3", "-lpthread").CombinedOutput(); err != nil {
		b.Fatalf("gcc bench.c: %v\n%s", err, out)
	}
	// The default PUT budget (1 a second, a burst of 10) and issue 4's
	// former default of 10 a second.
	for _, policy := range []struct{ name, env string }{
		{"default", ""},
		{"puts10", "LITESTREAM_MAX_PUTS_PER_SECOND=10"},
	} {
		b.Run(policy.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchS3Once(b, srv, bin, policy.env)
			}
		})
	}
}

func benchS3Once(b *testing.B, srv *s3test.Server, bin, policyEnv string) {
	bucket := srv.NewBucket(b)
	dir := b.TempDir()
	env := []string{
		"LITESTREAM_ACCESS_KEY_ID=" + srv.AccessKey,
		"LITESTREAM_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"LITESTREAM_REPLICA_URL=s3://" + bucket + "/db?endpoint=" + url.QueryEscape(srv.Endpoint),
		"BENCH_LAG_INTERVAL_MS=100",
		"BENCH_RATE_TPS=1000",
		"BENCH_RATE_SECONDS=5",
	}
	if policyEnv != "" {
		env = append(env, policyEnv)
	}
	r := runCmd(b, dir, env, nil, bin, "ext", "NORMAL", "2000", dir, extPath)
	if r.Code != 0 {
		b.Fatalf("bench failed\n%s", r)
	}
	fields := map[string]float64{}
	for _, f := range strings.Fields(r.Stdout) {
		if k, v, ok := strings.Cut(f, "="); ok {
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				fields[k] = x
			}
		}
	}
	b.Logf("%s", strings.TrimSpace(r.Stdout))
	for _, k := range []string{"lag_p50_ms", "lag_p99_ms", "puts_per_s", "rate_lag_p50_ms", "rate_lag_p99_ms", "rate_tps"} {
		b.ReportMetric(fields[k], k)
	}
}
