package vfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCapture runs the capture state machine (step, follow, adopt,
// snapshot, resume) against a fake shim over real WAL bytes.
func TestCapture(t *testing.T) {
	t.Run("SnapshotThenAppend", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x21, 4: 0x41}, true)
		f.sync()
		f.commit(map[uint32]byte{3: 0x31}, true)
		f.commit(map[uint32]byte{5: 0x51}, true)
		if got := f.sync(); got < 2 {
			t.Fatalf("Sync=%d, want the TXID after three commits", got)
		}
		f.check()
		if n := f.snapshots(); n != 1 {
			t.Errorf("%d snapshots, want 1", n)
		}
	})

	// WAL restarts. A counted reset and salt-1 plus one is the generation
	// after the one followed, whatever the checkpoint sequence says (it is
	// each connection's own count): no snapshot. A reset no gate counted
	// (a writer without the extension) may have destroyed frames, and a
	// salt-1 that jumped means a generation was missed: a snapshot each.
	// A header with checkpoint sequence 0 comes from a connection that
	// never restarted the WAL itself, and SQLite gives it random salts
	// (sqlite3WalFrames): the salts prove nothing, but the wal-index
	// change counter, bumped by every commit, does: a counted restart is
	// followed on if no commit happened in between (between: commits in a
	// generation no step saw).
	for _, tc := range []struct {
		name      string
		saltDelta uint32
		ckptSeq   uint32
		counted   bool
		between   uint32
		snapshots int
	}{
		{"RestartCounted", 1, 7, true, 0, 1},
		{"RestartUncounted", 1, 7, false, 0, 2},
		{"MissedGeneration", 2, 7, true, 1, 2},
		{"SaltJumpNoCommitBetween", 2, 7, true, 0, 1},
		{"RandomSaltsCounted", 0x5eed, 0, true, 0, 1},
		{"RandomSaltsCommitBetween", 0x5eed, 0, true, 1, 2},
		{"RandomSaltsUncounted", 0x5eed, 0, false, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDB(t)
			f.start()
			f.commit(map[uint32]byte{2: 0x22}, true)
			f.sync()
			f.lost = tc.between
			f.restartBy(f.w.salt1+tc.saltDelta, tc.ckptSeq, tc.counted)
			f.commit(map[uint32]byte{3: 0x33}, true)
			f.sync()
			f.check()
			if n := f.snapshots(); n != tc.snapshots {
				t.Errorf("%d snapshots, want %d", n, tc.snapshots)
			}
		})
	}

	// Another process's gate counted the reset in the shared state.
	t.Run("RestartCountedBySharedGate", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x25}, true)
		f.sync()
		f.restart(f.w.salt1+1, false)
		f.db.sh.u64(offRestarts).Add(1)
		f.commit(map[uint32]byte{3: 0x36}, false) // another process's commit: no announce
		f.db.sh.signal(false)
		f.sync()
		f.check()
		if n := f.snapshots(); n != 1 {
			t.Errorf("%d snapshots after a reset counted by another process's gate, want 1", n)
		}
	})

	// An owner that has not read has no wal-index: it trusts the one
	// another process's shim published with its commit, so frames whose
	// checksums do not chain are captured (not left behind until a
	// snapshot), and their checksums need no check.
	t.Run("TrustsAnotherProcessCommit", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x28}, true)
		f.sync()
		f.commit(map[uint32]byte{3: 0x38, 4: 0x48}, false)
		f.breakChain()
		f.host.dropIndex()
		f.commitElsewhere()
		f.sync()
		f.check()
		if n := f.snapshots(); n != 1 {
			t.Errorf("%d snapshots, want 1", n)
		}
	})

	t.Run("GateTimeout", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x26}, true)
		f.sync()
		f.host.gateTimeout()
		f.commit(map[uint32]byte{3: 0x37}, true)
		f.sync()
		f.check()
		if n := f.snapshots(); n != 2 {
			t.Errorf("%d snapshots after a gate timeout, want 2", n)
		}
	})

	// A step that keeps failing (here the snapshot cannot open the
	// database file; a full disk does the same) is retried after a
	// backoff, not at every commit, and a WAL reset does not wait for the
	// backoff; a sync request tries again at once.
	t.Run("FailingStepBacksOff", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x28}, true)
		f.sync()
		f.host.mu.Lock()
		f.host.openErr, f.host.opens = errors.New("injected: no space left on device"), 0
		f.host.mu.Unlock()
		f.host.gateTimeout() // owes a snapshot
		for i := 0; i < 30; i++ {
			f.commit(map[uint32]byte{3: byte(0x40 + i)}, true)
			time.Sleep(10 * time.Millisecond)
		}
		f.host.mu.Lock()
		opens := f.host.opens
		f.host.ev.GateWaiters = 1 // a WAL reset waits for the commits
		f.host.ver++
		f.host.cond.Broadcast()
		announced := f.host.ev.Announced
		f.host.mu.Unlock()
		if opens > 4 {
			t.Errorf("%d snapshot tries in 300 ms of commits, want a backoff (at most 4)", opens)
		}
		deadline := time.Now().Add(time.Second)
		for f.host.Events().Acked < announced && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if ev := f.host.Events(); ev.Acked < announced {
			t.Errorf("a gate waiter was not released during the backoff: acked %d of %d", ev.Acked, announced)
		}
		f.host.mu.Lock()
		f.host.openErr, f.host.ev.GateWaiters = nil, 0
		f.host.mu.Unlock()
		t0 := time.Now()
		f.sync()
		if d := time.Since(t0); d > time.Second {
			t.Errorf("sync after the cause went away took %v: it waited out the backoff", d)
		}
		f.check()
	})

	t.Run("ExclusiveMode", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x27}, true)
		f.sync()
		f.host.exclusiveWrite()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := f.db.Sync(ctx); !errors.Is(err, ErrNotReplicating) {
			t.Fatalf("Sync in exclusive mode = %v, want ErrNotReplicating", err)
		}
		if st := f.db.Status(); st.State != StateNotReplicating {
			t.Fatalf("status %+v, want not-replicating", st)
		}
	})

	// Not in WAL mode (the header's read/write versions 1, no WAL open):
	// not replicating, loudly, and sync says so.
	t.Run("NotWAL", func(t *testing.T) {
		f := newFakeDB(t)
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		b[18], b[19] = 1, 1
		if err := os.WriteFile(f.path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f.host.open(1, 0)
		f.start()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := f.db.Sync(ctx); !errors.Is(err, ErrNotReplicating) || !strings.Contains(err.Error(), "WAL") {
			t.Fatalf("Sync on a rollback-journal database = %v, want ErrNotReplicating naming WAL", err)
		}
	})

	// The database file replaced underneath an open connection (issue 9,
	// item 7): loud, and no later commit is confirmed.
	t.Run("FileReplaced", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x2a}, true)
		f.sync()
		other := filepath.Join(f.dir, "other.db")
		if err := os.WriteFile(other, make([]byte, 4*fakePageSize), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, f.path); err != nil {
			t.Fatal(err)
		}
		f.commit(map[uint32]byte{3: 0x3a}, true) // the old connection writes on
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := f.db.Sync(ctx)
		if !errors.Is(err, ErrNotReplicating) || !strings.Contains(err.Error(), "replaced") {
			t.Fatalf("Sync after the file was replaced = %v, want ErrNotReplicating naming it", err)
		}
		if st := f.db.Status(); st.State != StateNotReplicating || !strings.Contains(st.Reason, "replaced") {
			t.Fatalf("status %+v", st)
		}
	})

	// Resume: a reopened database whose WAL holds transactions committed
	// after the spool's last position continues the chain from there.
	t.Run("ResumeInsideWAL", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x28}, true)
		f.sync()
		f.stop()
		f.commit(map[uint32]byte{3: 0x38}, false) // committed while nobody replicates
		f.commit(map[uint32]byte{4: 0x48}, false)
		f.host = newFakeHost(f.path)
		f.host.setIndex(f.frames, f.w.salt1, f.w.salt2)
		f.host.open(1, 1)
		f.start()
		f.sync()
		f.check()
		if n := f.snapshots(); n != 1 {
			t.Errorf("%d snapshots after a resume inside the WAL, want 1", n)
		}
	})

	// Status: starting before the first step, never ok for a commit the
	// replica does not have.
	t.Run("StatusHonest", func(t *testing.T) {
		f := newFakeDB(t)
		f.start()
		f.commit(map[uint32]byte{2: 0x29}, true)
		txid := f.sync()
		f.commit(map[uint32]byte{3: 0x39}, false) // another process's
		f.db.sh.signal(false)
		if st := f.db.Status(); st.State == StateOK && st.ReplicatedTXID <= uint64(txid) {
			t.Fatalf("status ok at replicated TXID %d while a commit waits: %+v", st.ReplicatedTXID, st)
		}
		if got := f.sync(); got <= txid {
			t.Fatalf("Sync after another commit = %d, want > %d", got, txid)
		}
		f.check()
	})
}
