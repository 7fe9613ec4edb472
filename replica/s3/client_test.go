package s3_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/litestream-vfs/litestream_vfs/replica/s3"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// shared is the MinIO server this package's tests share, started on first
// use and stopped by TestMain.
var shared struct {
	once sync.Once
	srv  *s3test.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// server returns the shared MinIO server, starting it if needed.
func server(tb testing.TB) *s3test.Server {
	tb.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.srv, shared.err = s3test.StartServer(s3test.Options{})
		if shared.err == nil {
			fmt.Fprintf(os.Stderr, "minio started in %s\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		tb.Fatalf("start minio: %v", shared.err)
	}
	return shared.srv
}

func TestClient(t *testing.T) {
	srv := server(t)
	t.Run("Prefix", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		var n atomic.Int64
		replicatest.RunClientTests(t, func(t *testing.T) replica.Client {
			return srv.Client(t, bucket, fmt.Sprintf("db%d/replica", n.Add(1)))
		})
	})
	t.Run("NoPrefix", func(t *testing.T) {
		replicatest.RunClientTests(t, func(t *testing.T) replica.Client {
			return srv.Client(t, srv.NewBucket(t), "")
		})
	})
}

func TestClientLayout(t *testing.T) {
	srv := server(t)
	bucket := srv.NewBucket(t)
	mc := srv.MinioClient(t)
	ctx := context.Background()
	tests := []struct {
		name, prefix, key string
	}{
		{"Prefix", "a/b", "a/b/0009/0000000000000001-000000000000002a.ltx"},
		{"PrefixSlashes", "/c/", "c/0009/0000000000000001-000000000000002a.ltx"},
		{"NoPrefix", "", "0009/0000000000000001-000000000000002a.ltx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := srv.Client(t, bucket, tt.prefix)
			before := time.Now().Add(-time.Second)
			if _, err := c.WriteLTXFile(ctx, 9, 1, 0x2a, strings.NewReader("x")); err != nil {
				t.Fatalf("WriteLTXFile: %v", err)
			}
			info, err := mc.StatObject(ctx, bucket, tt.key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatalf("stat %s: %v", tt.key, err)
			}
			ts, err := time.Parse(time.RFC3339Nano, info.UserMetadata["Litestream-Timestamp"])
			if err != nil {
				t.Fatalf("metadata %v: litestream-timestamp: %v", info.UserMetadata, err)
			}
			if ts.Before(before) || ts.After(time.Now()) {
				t.Fatalf("litestream-timestamp=%s, want about now", ts)
			}
		})
	}
}

func TestClientLTXFilesIgnores(t *testing.T) {
	srv := server(t)
	bucket := srv.NewBucket(t)
	mc := srv.MinioClient(t)
	ctx := context.Background()
	for _, key := range []string{
		"p/0000/garbage",
		"p/0000/0000000000000001-0000000000000001.ltx.tmp",
		"p/0000/sub/0000000000000002-0000000000000002.ltx",
		"p/000/0000000000000003-0000000000000003.ltx",
		"p/0000/0000000000000004-0000000000000004.ltx",
		"px/0000/0000000000000005-0000000000000005.ltx",
	} {
		if _, err := mc.PutObject(ctx, bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	c := srv.Client(t, bucket, "p")
	var skipped []string
	c.OnSkipped(func(path, why string) { skipped = append(skipped, path+": "+why) })
	infos, err := c.LTXFiles(ctx, 0)
	if err != nil {
		t.Fatalf("LTXFiles: %v", err)
	}
	if len(infos) != 1 || infos[0].MinTXID != 4 {
		t.Fatalf("LTXFiles(0) = %d files, want only 4-4", len(infos))
	}
	// Every key of the level's prefix that is not an LTX file is told of
	// (they were ignored without a word: a restore older than the replica
	// with exit 0; found by an attack).
	slices.Sort(skipped)
	want := []string{
		"s3://" + bucket + "/p/0000/0000000000000001-0000000000000001.ltx.tmp: not an LTX file name",
		"s3://" + bucket + "/p/0000/garbage: not an LTX file name",
		"s3://" + bucket + "/p/0000/sub/: not an LTX file name (a prefix below the level)",
	}
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped:\n%s\nwant:\n%s", strings.Join(skipped, "\n"), strings.Join(want, "\n"))
	}
}

// countingTransport counts requests by method.
type countingTransport struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  map[string]int
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.n[req.Method]++
	t.mu.Unlock()
	return t.rt.RoundTrip(req)
}

// take returns the counts so far as "GET=1 PUT=2" (sorted) and resets them.
func (t *countingTransport) take() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for _, m := range []string{"DELETE", "GET", "HEAD", "POST", "PUT"} {
		if t.n[m] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", m, t.n[m]))
		}
	}
	clear(t.n)
	return strings.Join(parts, " ")
}

// countingClient returns a client on a fresh bucket whose requests are
// counted.
func countingClient(t *testing.T) (*s3.Client, *countingTransport) {
	t.Helper()
	srv := server(t)
	cfg := srv.Config(srv.NewBucket(t), "db")
	tr, err := s3.NewTransport(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{rt: tr, n: map[string]int{}}
	cfg.Transport = ct
	c, err := s3.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, ct
}

func TestClientRequests(t *testing.T) {
	c, ct := countingClient(t)
	ctx := context.Background()
	tests := []struct {
		name string
		fn   func() error
		want string
	}{
		{"WriteSmall", func() error {
			_, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(make([]byte, 100<<10)))
			return err
		}, "PUT=1"},
		{"List", func() error { _, err := c.LTXFiles(ctx, 0); return err }, "GET=1"},
		{"Open", func() error {
			rc, err := c.OpenLTXFile(ctx, 0, 1, 1)
			if err != nil {
				return err
			}
			defer func() { _ = rc.Close() }()
			_, err = io.Copy(io.Discard, rc)
			return err
		}, "GET=1"},
		{"OpenMissing", func() error {
			if _, err := c.OpenLTXFile(ctx, 0, 2, 2); !errors.Is(err, replica.ErrNotFound) {
				return fmt.Errorf("err=%v, want ErrNotFound", err)
			}
			return nil
		}, "GET=1"},
		{"DeleteBatches", func() error {
			// 2500 keys, 2499 missing: three DeleteObjects requests.
			var infos []*ltx.FileInfo
			for txid := ltx.TXID(1); txid <= 2500; txid++ {
				infos = append(infos, &ltx.FileInfo{Level: 0, MinTXID: txid, MaxTXID: txid})
			}
			return c.DeleteLTXFiles(ctx, infos)
		}, "POST=3"},
		{"ListAfterDelete", func() error {
			infos, err := c.LTXFiles(ctx, 0)
			if err == nil && len(infos) != 0 {
				return fmt.Errorf("%d files left", len(infos))
			}
			return err
		}, "GET=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct.take()
			if err := tt.fn(); err != nil {
				t.Fatal(err)
			}
			if got := ct.take(); got != tt.want {
				t.Fatalf("requests %q, want %q", got, tt.want)
			}
		})
	}
}

// failingReader returns n zero bytes, then errInjected.
type failingReader struct{ n int }

var errInjected = errors.New("injected read error")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errInjected
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func TestClientMultipart(t *testing.T) {
	c, ct := countingClient(t)
	ctx := context.Background()
	const size = 16<<20 + 100 // one byte past a single PUT
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]

	info, err := c.WriteLTXFile(ctx, 9, 1, 10, io.MultiReader(bytes.NewReader(data))) // hide Len
	if err != nil {
		t.Fatalf("WriteLTXFile: %v", err)
	}
	if info.Size != size {
		t.Fatalf("Size=%d, want %d", info.Size, size)
	}
	if got := ct.take(); got != "POST=2 PUT=2" { // initiate, 2 parts, complete
		t.Fatalf("requests %q, want multipart upload", got)
	}
	rc, err := c.OpenLTXFile(ctx, 9, 1, 10)
	if err != nil {
		t.Fatalf("OpenLTXFile: %v", err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (err %v), want the %d written", len(got), err, size)
	}

	// A reader failing after the first part aborts the upload.
	if _, err := c.WriteLTXFile(ctx, 9, 1, 20, &failingReader{n: 20 << 20}); !errors.Is(err, errInjected) {
		t.Fatalf("WriteLTXFile with failing reader err=%v, want errInjected", err)
	}
	if _, err := c.OpenLTXFile(ctx, 9, 1, 20); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("OpenLTXFile after failed upload err=%v, want ErrNotFound", err)
	}
}

// ops runs every client operation against c, concurrently, and returns
// their errors by name.
func ops(c replica.Client) map[string]error {
	ctx := context.Background()
	fns := map[string]func() error{
		"LTXFiles":    func() error { _, err := c.LTXFiles(ctx, 0); return err },
		"OpenLTXFile": func() error { _, err := c.OpenLTXFile(ctx, 0, 1, 1); return err },
		"WriteLTXFile": func() error {
			_, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("x"))
			return err
		},
		"DeleteLTXFiles": func() error {
			return c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}})
		},
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(map[string]error, len(fns))
	for name, fn := range fns {
		wg.Go(func() {
			err := fn()
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

func TestClientPermanentErrors(t *testing.T) {
	srv := server(t)
	bucket := srv.NewBucket(t)
	const badSecret = "not-the-secret-key-0123456789"
	tests := []struct {
		name   string
		mutate func(*s3.Config)
		want   error
	}{
		{"WrongSecret", func(c *s3.Config) { c.SecretAccessKey = badSecret }, s3.ErrAccessDenied},
		{"WrongAccessKey", func(c *s3.Config) { c.AccessKeyID = "nobody"; c.SecretAccessKey = badSecret }, s3.ErrAccessDenied},
		{"NoSuchBucket", func(c *s3.Config) { c.Bucket = "no-such-bucket" }, s3.ErrNoSuchBucket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.Config(bucket, "db")
			tt.mutate(&cfg)
			c, err := s3.NewClient(cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			for op, err := range ops(c) {
				t.Logf("%s: %v", op, err)
				if !errors.Is(err, tt.want) {
					t.Errorf("%s err=%v, want %v", op, err, tt.want)
				}
				if !s3.IsPermanent(err) {
					t.Errorf("%s IsPermanent(%v)=false, want true", op, err)
				}
				if err != nil && !strings.HasPrefix(err.Error(), "s3: ") {
					t.Errorf("%s err=%q, want prefix \"s3: \"", op, err)
				}
				for _, secret := range []string{badSecret, srv.SecretKey} {
					if err != nil && strings.Contains(err.Error(), secret) {
						t.Errorf("%s err=%q contains a secret key", op, err)
					}
				}
			}
			for _, secret := range []string{badSecret, srv.SecretKey} {
				if strings.Contains(c.String(), secret) {
					t.Errorf("String()=%q contains a secret key", c.String())
				}
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connection refused

	c, err := s3.NewClient(s3.Config{
		Bucket: "bucket", Endpoint: "http://" + addr, Region: "us-east-1", ForcePathStyle: true,
		AccessKeyID: "id", SecretAccessKey: "secret",
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	start := time.Now()
	for op, err := range ops(c) {
		if err == nil {
			t.Errorf("%s succeeded against a closed port", op)
		}
		t.Logf("%s: %v", op, err)
		if s3.IsPermanent(err) || errors.Is(err, replica.ErrNotFound) {
			t.Errorf("%s err=%v is permanent or not-found, want transient", op, err)
		}
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("operations took %s against a closed port, want a few seconds", elapsed)
	}
}

func TestClientIgnoresAWSCABundle(t *testing.T) {
	srv := server(t)
	t.Setenv("AWS_CA_BUNDLE", "/nonexistent/ca-bundle.pem")
	c := srv.Client(t, srv.NewBucket(t), "db")
	for op, err := range ops(c) {
		if err != nil && !errors.Is(err, replica.ErrNotFound) {
			t.Errorf("%s with AWS_CA_BUNDLE=/nonexistent: %v", op, err)
		}
	}
}

// TestClientIgnoresProxyForPlainHTTP: a proxy variable pointing nowhere
// (a closed loopback port) must not break a plain-http endpoint.
func TestClientIgnoresProxyForPlainHTTP(t *testing.T) {
	srv := server(t)
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"} {
		t.Setenv(k, "http://127.0.0.1:1")
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	c := srv.Client(t, srv.NewBucket(t), "db")
	for op, err := range ops(c) {
		if err != nil && !errors.Is(err, replica.ErrNotFound) {
			t.Errorf("%s with HTTP_PROXY set: %v", op, err)
		}
	}
}

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	certsDir, caFile := s3test.WriteCerts(t, dir)
	start := time.Now()
	srv := s3test.StartWith(t, s3test.Options{CertsDir: certsDir, CAFile: caFile})
	t.Logf("minio with TLS started in %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("Endpoint=%q, want https", srv.Endpoint)
	}
	bucket := srv.NewBucket(t)

	// roundTrip writes and reads back a file through a client for cfg.
	roundTrip := func(cfg s3.Config) error {
		c, err := s3.NewClient(cfg)
		if err != nil {
			return err
		}
		ctx := context.Background()
		if _, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("tls")); err != nil {
			return err
		}
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1)
		if err != nil {
			return err
		}
		defer func() { _ = rc.Close() }()
		b, err := io.ReadAll(rc)
		if err == nil && string(b) != "tls" {
			err = fmt.Errorf("read back %q, want %q", b, "tls")
		}
		return err
	}

	t.Run("CAFile", func(t *testing.T) {
		if err := roundTrip(srv.Config(bucket, "ca")); err != nil {
			t.Fatalf("with CAFile: %v", err)
		}
	})
	t.Run("NoCA", func(t *testing.T) {
		cfg := srv.Config(bucket, "noca")
		cfg.CAFile = ""
		err := roundTrip(cfg)
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) {
			t.Fatalf("without CAFile err=%v, want an unknown-authority x509 error", err)
		}
		if s3.IsPermanent(err) {
			t.Fatalf("IsPermanent(%v)=true", err)
		}
	})
	t.Run("SkipVerify", func(t *testing.T) {
		var logs bytes.Buffer
		cfg := srv.Config(bucket, "skip")
		cfg.CAFile = ""
		cfg.SkipVerify = true
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		if err := roundTrip(cfg); err != nil {
			t.Fatalf("with SkipVerify: %v", err)
		}
		if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "s3: TLS verification disabled") {
			t.Fatalf("logs %q, want a TLS verification warning", got)
		}
	})
	t.Run("BadCAFile", func(t *testing.T) {
		cfg := srv.Config(bucket, "bad")
		cfg.CAFile = certsDir + "/missing.pem"
		if _, err := s3.NewClient(cfg); err == nil || !strings.Contains(err.Error(), "ca file") {
			t.Fatalf("NewClient with missing CAFile err=%v, want a ca file error", err)
		}
	})
}

func TestServerRestart(t *testing.T) {
	start := time.Now()
	srv := s3test.Start(t) // its own server: this test takes it down
	t.Logf("minio started in %s", time.Since(start).Round(time.Millisecond))
	c := srv.Client(t, srv.NewBucket(t), "db")
	ctx := context.Background()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, strings.NewReader("durable")); err != nil {
		t.Fatalf("WriteLTXFile: %v", err)
	}
	endpoint, pid := srv.Endpoint, srv.PID()

	srv.Stop()
	if _, err := c.LTXFiles(ctx, 0); err == nil || s3.IsPermanent(err) {
		t.Fatalf("LTXFiles while stopped err=%v, want a transient error", err)
	}

	start = time.Now()
	srv.Restart(t)
	t.Logf("minio restarted in %s", time.Since(start).Round(time.Millisecond))
	if srv.Endpoint != endpoint || srv.PID() == pid || srv.PID() == 0 {
		t.Fatalf("after restart endpoint %s pid %d, want endpoint %s and a new pid (was %d)", srv.Endpoint, srv.PID(), endpoint, pid)
	}
	rc, err := c.OpenLTXFile(ctx, 0, 1, 1)
	if err != nil {
		t.Fatalf("OpenLTXFile after restart: %v", err)
	}
	defer func() { _ = rc.Close() }()
	if b, err := io.ReadAll(rc); err != nil || string(b) != "durable" {
		t.Fatalf("read after restart %q (err %v), want %q", b, err, "durable")
	}

	srv.Kill()
	if srv.PID() != 0 {
		t.Fatalf("PID()=%d after Kill, want 0", srv.PID())
	}
	srv.Restart(t)
}

// TestClientLTXFilesFrom: a follower's "what is new" is the files from a
// TXID on, in one listing, and the start of a level is one key.
func TestClientLTXFilesFrom(t *testing.T) {
	srv := server(t)
	c := srv.Client(t, srv.NewBucket(t), "db")
	ctx := context.Background()
	for _, r := range [][2]ltx.TXID{{1, 1}, {2, 4}, {5, 5}, {6, 0x10}, {0x11, 0x11}, {0x100, 0x100}} {
		if _, err := c.WriteLTXFile(ctx, 0, r[0], r[1], strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		from ltx.TXID
		max  int
		want string
	}{
		{0, 0, "1-1 2-4 5-5 6-16 17-17 256-256"},
		{5, 0, "5-5 6-16 17-17 256-256"},
		{3, 0, "5-5 6-16 17-17 256-256"}, // 2-4 starts before 3
		{0x11, 0, "17-17 256-256"},
		{0x101, 0, ""},
		{0, 1, "1-1"},
		{6, 2, "6-16 17-17"},
	}
	for _, tt := range tests {
		infos, err := c.LTXFilesFrom(ctx, 0, tt.from, tt.max)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, fi := range infos {
			got = append(got, fmt.Sprintf("%d-%d", fi.MinTXID, fi.MaxTXID))
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("LTXFilesFrom(%d, %d) = %q, want %q", tt.from, tt.max, s, tt.want)
		}
	}
}
