package s3test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/litestream-vfs/litestream_vfs/replica/s3"
)

const (
	// MinioModule is the module "go install"ed when the binary is missing.
	MinioModule = "github.com/minio/minio"
	// MinioVersion is the version of MinioModule installed.
	MinioVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"
)

// Region is the region every Server reports and every Client uses.
const Region = "us-east-1"

// Timeouts for starting and stopping the server.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Options configures StartServer.
type Options struct {
	// CertsDir, if set, is passed as --certs-dir; holding public.crt and
	// private.key, it makes MinIO serve https (see WriteCerts).
	CertsDir string
	// CAFile is the PEM CA that signed CertsDir's certificate. The Server
	// uses it for its own requests and hands it to Client.
	CAFile string
	// AccessKey and SecretKey set the root credentials (default: a
	// fixed user and a secret new at each start). The docs test uses
	// MinIO's own defaults, minioadmin/minioadmin, as the docs do.
	AccessKey, SecretKey string
}

// Server is a running MinIO server on 127.0.0.1, with one data directory
// and fixed ports across Stop and Restart. Safe for concurrent use.
type Server struct {
	// Endpoint is the base URL, "http://127.0.0.1:PORT" (or https with
	// Options.CertsDir).
	Endpoint string
	// AccessKey is the root user (MINIO_ROOT_USER).
	AccessKey string
	// SecretKey is the root password (MINIO_ROOT_PASSWORD).
	SecretKey string
	// CAFile is Options.CAFile.
	CAFile string

	bin         string
	dataDir     string
	ownsDataDir bool // remove dataDir on Close
	logPath     string
	addr        string // "127.0.0.1:PORT"
	consoleAddr string
	certsDir    string

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil when stopped
	done chan struct{} // closed when cmd has exited
}

// Start starts a MinIO server with a t.TempDir data directory and stops it
// at the end of the test. It fails tb if the server cannot be installed or
// started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options (an https server).
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := start(opts, tb.TempDir(), false)
	if err != nil {
		tb.Fatalf("start minio: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartServer starts a MinIO server outside any test, for TestMain or a
// server shared by a package's tests. Its data directory is a new
// temporary directory; Close stops the server and removes it.
func StartServer(opts Options) (*Server, error) {
	dir, err := os.MkdirTemp("", "minio-data-")
	if err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s, err := start(opts, dir, true)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// start installs the binary if needed and starts the server, retrying
// with new ports if a port picked as free was taken meanwhile.
func start(opts Options, dataDir string, ownsDataDir bool) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{
		AccessKey:   cmp.Or(opts.AccessKey, "minioadmin-test"),
		SecretKey:   cmp.Or(opts.SecretKey, "minioadmin-secret-"+strconv.FormatInt(time.Now().UnixNano(), 36)),
		CAFile:      opts.CAFile,
		bin:         bin,
		dataDir:     dataDir,
		ownsDataDir: ownsDataDir,
		logPath:     filepath.Join(dataDir, "..", filepath.Base(dataDir)+".minio.log"),
		certsDir:    opts.CertsDir,
	}
	scheme := "http"
	if opts.CertsDir != "" {
		scheme = "https"
	}
	var errs []error
	for range 3 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		s.consoleAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		s.Endpoint = scheme + "://" + s.addr
		if err := s.run(); err != nil {
			errs = append(errs, err)
			continue
		}
		return s, nil
	}
	return nil, errors.Join(errs...)
}

// run starts the process and waits until it reports live.
func (s *Server) run() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("minio already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open minio log: %w", err)
	}
	defer func() { _ = logf.Close() }() // the child holds its own descriptor

	args := []string{"server", s.dataDir, "--address", s.addr, "--console-address", s.consoleAddr, "--quiet"}
	if s.certsDir != "" {
		args = append(args, "--certs-dir", s.certsDir)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	if err := s.waitLive(done); err != nil {
		s.stopLocked()
		return fmt.Errorf("%w\nminio log %s:\n%s", err, s.logPath, s.logTail())
	}
	return nil
}

// waitLive polls the liveness endpoint until it answers 200, the process
// exits, or startTimeout passes.
func (s *Server) waitLive(done <-chan struct{}) error {
	hc := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // liveness probe only
	}
	defer hc.CloseIdleConnections()
	url := s.Endpoint + "/minio/health/live"
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("minio on %s exited during startup", s.addr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio on %s not live after %s (last error: %v)", s.addr, startTimeout, err)
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for
// it to exit. The data directory and ports are kept for Restart. Stopping
// a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	p, done := s.cmd.Process, s.done
	s.cmd, s.done = nil, nil
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.Kill()
	<-done
}

// Kill stops the server abruptly (SIGKILL), as a crash or outage would,
// and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart stops the server if it is running and starts it again on the
// same ports with the same data directory and credentials.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.run(); err != nil {
		tb.Fatalf("restart minio: %v", err)
	}
}

// Close stops the server and, for a server from StartServer, removes its
// data directory and log.
func (s *Server) Close() error {
	s.Stop()
	if !s.ownsDataDir {
		return nil
	}
	_ = os.Remove(s.logPath)
	if err := os.RemoveAll(s.dataDir); err != nil {
		return fmt.Errorf("remove minio data dir: %w", err)
	}
	return nil
}

// PID returns the server's process id, or 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Addr returns the server's "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// logTail returns the end of the server log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}

// bucketSeq numbers the buckets NewBucket creates.
var bucketSeq atomic.Int64

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), bucketSeq.Add(1))
	s.CreateBucket(tb, name)
	return name
}

// CreateBucket creates the bucket name.
func (s *Server) CreateBucket(tb testing.TB, name string) {
	tb.Helper()
	mc, err := s.minioClient()
	if err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mc.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
}

// MinioClient returns a minio-go client for the server with its root
// credentials, to inspect or prepare objects behind a replica client.
func (s *Server) MinioClient(tb testing.TB) *minio.Client {
	tb.Helper()
	mc, err := s.minioClient()
	if err != nil {
		tb.Fatalf("new minio client: %v", err)
	}
	return mc
}

// minioClient returns a minio-go client for the server with its root
// credentials.
func (s *Server) minioClient() (*minio.Client, error) {
	tr, err := s3.NewTransport(s3.Config{CAFile: s.CAFile, SkipVerify: s.CAFile == ""}, s.certsDir != "")
	if err != nil {
		return nil, err
	}
	return minio.New(s.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       s.certsDir != "",
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    tr,
	})
}

// Config returns an s3.Config for bucket and prefix on this server with
// its root credentials.
func (s *Server) Config(bucket, prefix string) s3.Config {
	return s3.Config{
		Bucket:          bucket,
		Prefix:          prefix,
		Endpoint:        s.Endpoint,
		Region:          Region,
		ForcePathStyle:  true,
		CAFile:          s.CAFile,
		AccessKeyID:     s.AccessKey,
		SecretAccessKey: s.SecretKey,
	}
}

// Client returns an S3 replica client for bucket and prefix on this
// server. The bucket is not created.
func (s *Server) Client(tb testing.TB, bucket, prefix string) *s3.Client {
	tb.Helper()
	c, err := s3.NewClient(s.Config(bucket, prefix))
	if err != nil {
		tb.Fatalf("new s3 client: %v", err)
	}
	return c
}

// freePorts returns n distinct ports free on 127.0.0.1 at the time of the
// call.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
