package replicator

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica/s3"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// countingTransport counts HTTP requests.
type countingTransport struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(req)
}

// TestReplicatorS3IdleMakesNoRequests ships to a real MinIO, then checks
// that an idle replicator sends nothing: no polling, no heartbeats.
func TestReplicatorS3IdleMakesNoRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO; covered by the full run")
	}
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	cfg := srv.Config(bucket, "db")
	tr, err := s3.NewTransport(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{rt: tr}
	cfg.Transport = ct
	client, err := s3.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := startWith(t, client, Options{SpoolDir: filepath.Join(t.TempDir(), "spool"), MaxPutsPerSecond: 10}, false)
	ctx := context.Background()
	m := newModel(4096, 8, 11)
	txid, err := r.Snapshot(4096, m.commit(), m.read, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		pgnos := m.change(uint32(i) + 1)
		if txid, err = r.Append(1, 4096, m.commit(), pgnos, m.read, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitReplicated(wctx, txid); err != nil {
		t.Fatal(err)
	}
	busy := ct.n.Load()
	idleFor := 3 * time.Second // IDLE_SECONDS=60 for the figure in docs/performance.md
	if s, err := strconv.Atoi(os.Getenv("IDLE_SECONDS")); err == nil && s > 0 {
		idleFor = time.Duration(s) * time.Second
	}
	time.Sleep(idleFor)
	idle := ct.n.Load() - busy
	t.Logf("requests: %d while shipping, %d in %v idle", busy, idle, idleFor)
	if idle != 0 {
		t.Fatalf("%d requests in %v of idle (after %d while shipping), want 0", idle, idleFor, busy)
	}
	if busy == 0 {
		t.Fatal("no requests counted while shipping: the counting transport is not in use")
	}
}

// TestConfirmStoreNeverAnswers: a store that accepts connections and never
// answers is an error (kind timeout) after one attempt of the listing that
// confirms the replica's position, not after the store client's retries
// (three 30 s header timeouts left the state "starting" for 90 s; found
// by an attack).
func TestConfirmStoreNeverAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	// Restored after the replicator's own cleanup has stopped it.
	old := confirmTimeout
	confirmTimeout = 300 * time.Millisecond
	t.Cleanup(func() { confirmTimeout = old })
	client, err := s3.NewClient(s3.Config{Bucket: "bucket", Prefix: "db", Endpoint: "http://" + ln.Addr().String(), Region: "us-east-1",
		AccessKeyID: "k", SecretAccessKey: "secret-key", ForcePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	r := startWith(t, client, Options{SpoolDir: filepath.Join(t.TempDir(), "spool"), RetryMin: 10 * time.Millisecond}, false)
	deadline := time.Now().Add(20 * time.Second)
	for st := r.Status(); st.UploadErrors[ErrKindTimeout] == 0; st = r.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("no timeout error after 20 s against a store that never answers: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := r.Status(); !st.ErrorActive || st.LastError == "" {
		t.Errorf("status after the timeout: %+v, want the error active and named", st)
	}
}
