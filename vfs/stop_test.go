package vfs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
)

// panicClient is a replica whose uploads panic once armed: a bug in the
// upload path, as the extension would meet it.
type panicClient struct {
	replica.Client
	armed atomic.Bool
}

func (c *panicClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if c.armed.Load() {
		panic("test: boom in an upload")
	}
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

// TestPanicStopsReplication: after a recovered panic nothing ships, so
// nothing may look as if it did or will (issue 11: a panic in the uploader
// left litestream_sync waiting for its whole timeout and, with the lock it
// held, every statement of a C client hanging). Sync fails at once with
// ErrStopped in the owner and in another process, status says stopped
// with the panic in last_error in both, and writers no longer wait at the
// WAL-reset gate for a capture that will not come.
func TestPanicStopsReplication(t *testing.T) {
	f := newFakeDB(t)
	pc := &panicClient{Client: file.NewClient(filepath.Join(f.dir, "replica"))}
	f.client = pc
	f.start()
	f.commit(map[uint32]byte{2: 9}, true)
	shipped := f.sync()
	if !f.host.attachedNow() {
		t.Fatal("not attached while replicating")
	}

	// Another process of the same host: its own lock file handle and
	// mapping of the shared state (never started: it only asks).
	other, err := Open(Config{Path: f.path, Replica: file.NewClient(filepath.Join(f.dir, "replica")), Host: newFakeHost(f.path), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if other.Replicating() {
		t.Fatal("the second DB took the replication lock")
	}

	pc.armed.Store(true)
	f.commit(map[uint32]byte{3: 7}, true)
	for name, db := range map[string]*DB{"owner": f.db, "other process": other} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t0 := time.Now()
		_, err := db.Sync(ctx)
		cancel()
		if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "boom in an upload") || time.Since(t0) > 10*time.Second {
			t.Fatalf("%s: Sync after the panic = %v after %v; want ErrStopped naming the panic, at once", name, err, time.Since(t0))
		}
		st := db.Status()
		if st.State != StateStopped || !strings.Contains(st.LastError, "boom in an upload") || st.Reason == "" {
			t.Fatalf("%s: Status after the panic = %+v; want stopped, the panic in last_error", name, st)
		}
		// Local is the position last published: the panicking upload can
		// beat the publish of the step that captured the commit (1 in a
		// loaded -race run), so it may still be the shipped one.
		if st.ReplicatedTXID != uint64(shipped) || st.LocalTXID < uint64(shipped) {
			t.Errorf("%s: replicated/local TXID %d/%d after the panic, want the last one shipped (%d) and no earlier local one", name, st.ReplicatedTXID, st.LocalTXID, shipped)
		}
	}
	if f.host.attachedNow() {
		t.Error("the owner's writers still wait at the gate after the panic")
	}
	if p, err := other.sh.load(); err != nil || p.Following {
		t.Errorf("shared state after the panic: following=%v (%v); other processes' gates would wait", p.Following, err)
	}
	done := make(chan struct{})
	go func() { f.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked after the panic")
	}
}
