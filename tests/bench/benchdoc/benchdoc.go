// Package benchdoc is what the benchmark drivers under tests/bench share:
// the machine facts their tables start with, the replacement of their
// generated section of docs/performance.md, a request-counting proxy in
// front of MinIO and a process's CPU time.
package benchdoc

import (
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

var modelRE = regexp.MustCompile(`model name\s*:\s*(.*)`)

// Machine describes this machine and the versions a table was measured
// with.
func Machine() string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := modelRE.FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	sq, _ := exec.Command("sqlite3", "-version").Output()
	return fmt.Sprintf("%s, %d CPUs, %s, SQLite %s, Litestream 0.5.16, MinIO %s",
		cpu, runtime.NumCPU(), runtime.Version(), strings.Fields(string(sq) + " ?")[0], s3test.MinioVersion)
}

// WriteSection replaces the text between "<!-- name:begin -->" and
// "<!-- name:end -->" in the file at path with table, or appends the
// marked section if the file has none.
func WriteSection(path, name, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	section := begin + "\n" + table + end
	if i < 0 || j < i {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	} else {
		s = s[:i] + section + s[j+len(end):]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// Main is a driver's main: it parses -smoke and -write, runs run in the
// repository root (the working directory) and prints its table; -write
// puts the table into the section of docs/performance.md. run cleans up
// after itself before it returns, error or not (a log.Fatal inside it
// would skip its deferred cleanup: a MinIO left running).
func Main(name, section string, run func(root string, smoke bool) (string, error)) {
	smoke := flag.Bool("smoke", false, "a short run that checks every part works (its figures mean little)")
	write := flag.Bool("write", false, "replace the generated section of docs/performance.md")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix(name + ": ")
	root, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	table, err := run(root, *smoke)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(table)
	if *write {
		if err := WriteSection(filepath.Join(root, "docs", "performance.md"), section, table); err != nil {
			log.Fatal(err)
		}
		fmt.Println(name + ": docs/performance.md updated")
	}
}

// CountingProxy forwards to MinIO and counts requests by method.
type CountingProxy struct {
	target *url.URL
	srv    *http.Server
	mu     sync.Mutex
	counts map[string]int64
	total  atomic.Int64
}

func NewCountingProxy(target *url.URL) *CountingProxy {
	return &CountingProxy{target: target, counts: map[string]int64{}}
}

func (p *CountingProxy) Start() (string, error) {
	rp := httputil.NewSingleHostReverseProxy(p.target)
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p.mu.Lock()
		p.counts[req.Method]++
		p.mu.Unlock()
		p.total.Add(1)
		rp.ServeHTTP(w, req)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = p.srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

func (p *CountingProxy) Stop() { _ = p.srv.Close() }

func (p *CountingProxy) Snapshot() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.counts)
}

// Puts is PUT+POST (multipart parts and completions count) between two
// snapshots.
func Puts(before, after map[string]int64) int64 {
	return after["PUT"] - before["PUT"] + after["POST"] - before["POST"]
}

// Requests counts every request between two snapshots.
func Requests(before, after map[string]int64) int64 {
	var n int64
	for k, v := range after {
		n += v - before[k]
	}
	return n
}

// ProcCPU is a process's user+system seconds from /proc/PID/stat.
func ProcCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	ticks := 100.0
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil {
			ticks = v
		}
	}
	return (ut + st) / ticks
}

// Store is a driver's local MinIO, a client of it and a counting proxy in
// front of it.
type Store struct {
	*s3test.Server
	MC       *minio.Client
	Proxy    *CountingProxy
	ProxyURL string // the proxy's endpoint: clients whose requests count
}

// StartStore starts MinIO (installed and cached by s3test) and the proxy.
func StartStore() (*Store, error) {
	srv, err := s3test.StartServer(s3test.Options{})
	if err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	s := &Store{Server: srv}
	target, _ := url.Parse(srv.Endpoint)
	s.Proxy = NewCountingProxy(target)
	if s.ProxyURL, err = s.Proxy.Start(); err != nil {
		s.Close()
		return nil, err
	}
	s.MC, err = minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: s3test.Region})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// MakeBucket creates bucket.
func (s *Store) MakeBucket(bucket string) error {
	return s.MC.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{Region: s3test.Region})
}

// Close stops the proxy and MinIO; safe on a nil Store.
func (s *Store) Close() {
	if s == nil {
		return
	}
	if s.Proxy != nil && s.Proxy.srv != nil {
		s.Proxy.Stop()
	}
	s.Server.Close()
}
