package replicator

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/safe"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
)

// within fails the test if fn does not return within d (it then keeps
// running: the test reports the hang instead of hanging itself).
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s blocked for %v", what, d)
	}
}

// TestPanicStopsLoudly: a panic recovered inside a locked section (confirm
// held r.mu while LatestPlan panicked, found by TestKillDuringExpiry) must
// neither leave the lock held (Status and Append blocked forever: a C
// client's statements hung) nor leave WaitReplicated waiting for a replica
// nothing ships to any more. It fails the Stop: Status says so at once,
// WaitReplicated returns safe.ErrStopped at once, Close returns.
func TestPanicStopsLoudly(t *testing.T) {
	dir := t.TempDir()
	stop := safe.NewStop(nil)
	r := startWith(t, file.NewClient(filepath.Join(dir, "replica")), Options{
		SpoolDir: filepath.Join(dir, "spool"), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, Stop: stop,
	}, true)
	m := newModel(512, 8, 3)
	if _, err := r.Snapshot(512, m.commit(), m.read, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, r, 1)

	testHookConfirm = func() { panic("test: boom inside confirm") }
	t.Cleanup(func() { testHookConfirm = nil })
	r.recheck(errors.New("test: confirm again"))
	select {
	case <-stop.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the panic did not fail the Stop")
	}

	within(t, 2*time.Second, "Status", func() {
		st := r.Status()
		if !st.Stopped || !strings.Contains(st.LastError, "internal error in uploader") || !strings.Contains(st.LastError, "boom inside confirm") {
			t.Errorf("Status after the panic = %+v; want Stopped with the panic in LastError", st)
		}
	})
	within(t, 2*time.Second, "Append", func() {
		if _, err := r.Append(1, 512, m.commit(), m.change(2), m.read, nil, time.Now()); err != nil {
			t.Errorf("Append after the panic: %v", err) // spooled for the next process
		}
	})
	within(t, 2*time.Second, "WaitReplicated", func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.WaitReplicated(ctx, 2); !errors.Is(err, safe.ErrStopped) {
			t.Errorf("WaitReplicated after the panic = %v; want safe.ErrStopped", err)
		}
	})
	within(t, 5*time.Second, "Close", func() { _ = r.Close() })
}
