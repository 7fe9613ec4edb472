package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/litestream-vfs/litestream_vfs/restore"
)

// memSink is a database in memory; a batch's writes become visible at
// Commit only, as SQLite's transaction makes them.
type memSink struct {
	pageSize uint32
	pages    [][]byte // index pgno-1
	commits  int
	failAt   int // Commit number that fails (0: none)
	foreign  bool
}

type memTx struct {
	s     *memSink
	pages [][]byte
}

func (s *memSink) PageSize(context.Context) (uint32, error) { return s.pageSize, nil }

func (s *memSink) ReadPages(_ context.Context, fn func(uint32, []byte) error) error {
	for i, p := range s.pages {
		if err := fn(uint32(i+1), p); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSink) Begin(context.Context) (restore.SinkTx, error) {
	return &memTx{s: s, pages: append([][]byte(nil), s.pages...)}, nil
}

func (tx *memTx) WritePage(pgno uint32, data []byte) error {
	for uint32(len(tx.pages)) < pgno {
		tx.pages = append(tx.pages, make([]byte, tx.s.pageSize))
	}
	tx.pages[pgno-1] = bytes.Clone(data)
	return nil
}

func (tx *memTx) Truncate(n uint32) error {
	tx.pages = tx.pages[:n]
	return nil
}

func (tx *memTx) Commit() error {
	tx.s.commits++
	if tx.s.commits == tx.s.failAt {
		return errors.New("disk full")
	}
	tx.s.pages = tx.pages
	return nil
}

func (tx *memTx) Rollback() error { return nil }

func (s *memSink) ForeignWrite(context.Context) (bool, error) {
	f := s.foreign
	s.foreign = false
	return f, nil
}

// image is the sink's database as one byte slice.
func (s *memSink) image() []byte { return bytes.Join(s.pages, nil) }

// startFollower restores h's state at txid into a memSink and returns a
// follower of c from there.
func startFollower(t *testing.T, h *history, c *file.Client, txid ltx.TXID) (*restore.Follower, *memSink, string) {
	t.Helper()
	s := &memSink{pageSize: h.db.PageSize}
	img := h.images[txid]
	for off := 0; off < len(img); off += int(h.db.PageSize) {
		s.pages = append(s.pages, bytes.Clone(img[off:off+int(h.db.PageSize)]))
	}
	state := filepath.Join(t.TempDir(), "out.db-follow")
	if err := restore.WriteFollowState(state, restore.FollowState{Replica: c.String(), TXID: txid}); err != nil {
		t.Fatal(err)
	}
	fl, err := restore.NewFollower(context.Background(), c, s, restore.FollowOptions{StatePath: state})
	if err != nil {
		t.Fatal(err)
	}
	return fl, s, state
}

func TestFollow(t *testing.T) {
	ctx := context.Background()
	const ps = 512
	// Grows, shrinks, grows again without writing every page in between
	// (pages 7-8 come back as zeros), and rewrites page 1 often.
	h := newHistory(t, ps, full(4), tx{6, []uint32{1, 5, 6}}, tx{3, []uint32{1, 2}},
		tx{8, []uint32{1, 6}}, tx{8, []uint32{3, 8}}, tx{2, []uint32{1}}, tx{5, []uint32{1, 4, 5}})
	t.Run("LevelZero", func(t *testing.T) {
		c := newReplica(t)
		put(t, c, 9, h.snapshotAt(t, 1))
		h.putL0(t, c, 1, 2)
		fl, s, _ := startFollower(t, h, c, 2)
		for txid := ltx.TXID(3); txid <= 7; txid++ {
			h.putL0(t, c, txid, txid)
			if err := fl.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if fl.TXID() != txid || !bytes.Equal(s.image(), h.images[txid]) {
				t.Fatalf("after TXID %d: follower at %d, image equal: %v", txid, fl.TXID(), bytes.Equal(s.image(), h.images[txid]))
			}
		}
		commits := s.commits
		if err := fl.Step(ctx); err != nil || s.commits != commits {
			t.Fatalf("a step with nothing new: err %v, %d commits (want none)", err, s.commits-commits)
		}
	})
	t.Run("SeveralFilesOneBatch", func(t *testing.T) {
		c := newReplica(t)
		h.putL0(t, c, 1, 7)
		fl, s, _ := startFollower(t, h, c, 1)
		if err := fl.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if fl.TXID() != 7 || s.commits != 1 || !bytes.Equal(s.image(), h.images[7]) {
			t.Fatalf("follower at %d after %d commits, want 7 in one", fl.TXID(), s.commits)
		}
	})
	t.Run("CompactedAway", func(t *testing.T) {
		// Level 0 lost TXIDs 2-5 to compaction: level 1 holds 2-5, of
		// which the follower (at 3) is in the middle. (Compaction keeps a
		// page's last version up to the final size, so a history that
		// shrinks and grows back without writing the pages, as the
		// other subtests', would not compact right; SQLite writes the
		// pages it grows by.)
		h := newHistory(t, ps, full(4), tx{5, []uint32{1, 5}}, tx{5, []uint32{2, 3}},
			tx{6, []uint32{1, 6}}, tx{6, []uint32{4}}, tx{7, []uint32{1, 7}}, tx{7, []uint32{2}})
		c := newReplica(t)
		h.putL0(t, c, 1, 1)
		put(t, c, 1, replicatest.Compact(t, h.l0(2, 5)...))
		h.putL0(t, c, 6, 7)
		fl, s, _ := startFollower(t, h, c, 3)
		if err := fl.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if fl.TXID() != 7 || !bytes.Equal(s.image(), h.images[7]) {
			t.Fatalf("follower at %d, image equal %v", fl.TXID(), bytes.Equal(s.image(), h.images[7]))
		}
	})
	t.Run("Diverged", func(t *testing.T) {
		// The follower's database is not the source's state at its TXID
		// (a source restored to an older state, say): the next file's
		// post-apply checksum says so, and the database is rebuilt from
		// the snapshot, in one batch.
		c := newReplica(t)
		put(t, c, 9, h.snapshotAt(t, 6))
		h.putL0(t, c, 1, 7)
		_, s, state := startFollower(t, h, c, 5)
		s.pages[1][100] ^= 0xff // not the state after TXID 5
		fl2, err := restore.NewFollower(ctx, c, s, restore.FollowOptions{StatePath: state})
		if err != nil {
			t.Fatal(err)
		}
		if err := fl2.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if fl2.TXID() != 7 || !bytes.Equal(s.image(), h.images[7]) {
			t.Fatalf("follower at %d, image equal %v", fl2.TXID(), bytes.Equal(s.image(), h.images[7]))
		}
	})
	t.Run("ForeignWrite", func(t *testing.T) {
		// A reader wrote the database (and grew it): the next step
		// rebuilds it from the replica, nothing new from the source.
		c := newReplica(t)
		h.putL0(t, c, 1, 5)
		fl, s, _ := startFollower(t, h, c, 5)
		s.pages[0][200] ^= 1
		s.pages = append(s.pages, make([]byte, ps), make([]byte, ps))
		s.foreign = true
		if err := fl.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if fl.TXID() != 5 || !bytes.Equal(s.image(), h.images[5]) {
			t.Fatalf("after a foreign write: follower at %d, image equal %v", fl.TXID(), bytes.Equal(s.image(), h.images[5]))
		}
	})
	t.Run("CommitFails", func(t *testing.T) {
		c := newReplica(t)
		h.putL0(t, c, 1, 4)
		fl, s, state := startFollower(t, h, c, 2)
		s.failAt = 1
		if err := fl.Step(ctx); err != nil {
			t.Fatal(err) // logged; the next step tries again
		}
		if fl.TXID() != 2 || !bytes.Equal(s.image(), h.images[2]) {
			t.Fatalf("after a failed commit: follower at %d", fl.TXID())
		}
		st, _ := restore.ReadFollowState(state)
		if st.TXID != 2 || st.Target != 4 {
			t.Fatalf("state after a failed commit %+v, want TXID 2 target 4", st)
		}
		if err := fl.Step(ctx); err != nil || fl.TXID() != 4 || !bytes.Equal(s.image(), h.images[4]) {
			t.Fatalf("the next step: %v, follower at %d", err, fl.TXID())
		}
		// A follower that was killed after its commit, before recording
		// it, applies the files again: the same state.
		if err := restore.WriteFollowState(state, restore.FollowState{Replica: c.String(), TXID: 2, Target: 4}); err != nil {
			t.Fatal(err)
		}
		h.putL0(t, c, 5, 5)
		fl3, err := restore.NewFollower(ctx, c, s, restore.FollowOptions{StatePath: state})
		if err != nil {
			t.Fatal(err)
		}
		if err := fl3.Step(ctx); err != nil || fl3.TXID() != 5 || !bytes.Equal(s.image(), h.images[5]) {
			t.Fatalf("resumed: %v, follower at %d", err, fl3.TXID())
		}
	})
	t.Run("StartedOver", func(t *testing.T) {
		// The replica now holds another history ending below the
		// follower's TXID: a level-0 file newer than the follower's.
		c := newReplica(t)
		h.putL0(t, c, 1, 7)
		fl, s, _ := startFollower(t, h, c, 7)
		h2 := newHistory(t, ps, full(3), tx{3, []uint32{2}})
		time.Sleep(1100 * time.Millisecond) // the new files are newer by more than a second
		if err := os.RemoveAll(filepath.Join(c.Dir(), "ltx")); err != nil {
			t.Fatal(err)
		}
		put(t, c, 9, h2.snapshotAt(t, 2))
		h2.putL0(t, c, 1, 2)
		// Seen within 30 steps (every 30th looks at the start of level 0).
		for i := 0; i < 30 && fl.TXID() == 7; i++ {
			if err := fl.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if fl.TXID() != 2 || !bytes.Equal(s.image(), h2.images[2]) {
			t.Fatalf("follower at %d, image equal %v", fl.TXID(), bytes.Equal(s.image(), h2.images[2]))
		}
	})
}
