package restore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

func TestVerifyReplica(t *testing.T) {
	basic := []tx{full(4), {4, []uint32{2}}, {6, []uint32{5, 6}}, {6, []uint32{1, 3}}, {6, []uint32{6}}}
	tests := []struct {
		name       string
		noCksum    bool
		setup      func(t *testing.T, h *history, c *file.Client)
		wantOK     bool
		wantErrs   []error  // Problems, in order
		msgs       []string // each in some problem
		gaps       []string // each in some gap
		wantChain  int
		noChecksum int
	}{
		{
			name:   "Good",
			setup:  func(t *testing.T, h *history, c *file.Client) { h.putL0(t, c, 1, 5) },
			wantOK: true, wantChain: 5,
		},
		{
			name: "GoodWithSnapshot",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 5)
				put(t, c, replica.SnapshotLevel, h.snapshotAt(t, 3))
			},
			wantOK: true, wantChain: 3,
		},
		{
			// The replicator writes a snapshot when the chain breaks: the
			// gap is reported but the latest state is restorable.
			name: "GapBridgedBySnapshot",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 2)
				h.putL0(t, c, 4, 5)
				put(t, c, replica.SnapshotLevel, h.snapshotAt(t, 3))
			},
			wantOK: true, wantChain: 3,
			gaps: []string{"level 0: txids 0000000000000003-0000000000000003 (3-3) missing between ltx/0/0000000000000002-0000000000000002.ltx and ltx/0/0000000000000004-0000000000000004.ltx"},
		},
		{
			// Files that chain (each pre-apply checksum is the previous
			// post-apply one) but whose pages do not make the state the
			// last claims: a restore fails its final checksum, and verify
			// said ok (a replicator that missed a writer's pages; found by
			// an attack).
			name: "StatesDoNotAddUp",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 4)
				hdr, _, err := ltx.DecodeHeader(bytes.NewReader(h.files[5]))
				if err != nil {
					t.Fatal(err)
				}
				post := ltx.ChecksumFlag | (h.db.Checksum() ^ 0x1234)
				put(t, c, 0, replicatest.EncodeLTX(t, hdr, h.db.Pages(5, 6), post))
			},
			wantErrs:  []error{restore.ErrChecksumMismatch},
			msgs:      []string{"ltx/0/0000000000000005-0000000000000005.ltx: the database it leads to"},
			wantChain: 5,
		},
		{
			name: "Gap",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 2)
				h.putL0(t, c, 5, 5)
			},
			wantErrs: []error{restore.ErrTXIDGap},
			msgs:     []string{"ltx/0/0000000000000005-0000000000000005.ltx"},
			gaps:     []string{"txids 0000000000000003-0000000000000004 (3-4) missing"},
		},
		{
			name: "Corrupt",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 2)
				put(t, c, 0, flipByte(h.files[3], ltx.HeaderSize+ltx.PageHeaderSize+4+1000))
				h.putL0(t, c, 4, 5)
			},
			wantErrs: []error{restore.ErrChecksumMismatch},
			msgs:     []string{"ltx/0/0000000000000003-0000000000000003.ltx"},
		},
		{
			name: "Truncated",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 3)
				b := h.files[4]
				if _, err := c.WriteLTXFile(context.Background(), 0, 4, 4, bytes.NewReader(b[:len(b)/2])); err != nil {
					t.Fatal(err)
				}
				h.putL0(t, c, 5, 5)
			},
			wantErrs: []error{restore.ErrInvalidFile},
			msgs:     []string{"ltx/0/0000000000000004-0000000000000004.ltx", "unexpected EOF"},
		},
		{
			// A bad file off the restore chain is still a problem.
			name: "CorruptOffChain",
			setup: func(t *testing.T, h *history, c *file.Client) {
				h.putL0(t, c, 1, 5)
				snap := h.snapshotAt(t, 2)
				put(t, c, replica.SnapshotLevel, flipByte(snap, len(snap)-1))
				put(t, c, replica.SnapshotLevel, h.snapshotAt(t, 4))
			},
			wantErrs: []error{restore.ErrChecksumMismatch},
			msgs:     []string{"ltx/9/0000000000000001-0000000000000002.ltx"},
		},
		{
			name: "ChecksumDiscontinuity",
			setup: func(t *testing.T, h *history, c *file.Client) {
				other := newHistory(t, 4096, full(4), tx{4, []uint32{3}}, tx{4, []uint32{1}})
				h.putL0(t, c, 1, 2)
				put(t, c, 0, other.files[3])
			},
			wantErrs: []error{restore.ErrChecksumMismatch},
			msgs:     []string{"ltx/0/0000000000000003-0000000000000003.ltx", "pre-apply checksum", "ltx/0/0000000000000002-0000000000000002.ltx"},
		},
		{
			name: "NoChecksum", noCksum: true,
			setup:  func(t *testing.T, h *history, c *file.Client) { h.putL0(t, c, 1, 5) },
			wantOK: true, wantChain: 5, noChecksum: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t, 4096)
			h.db.NoChecksum = tt.noCksum
			for _, x := range basic {
				h.tx(t, x)
			}
			c := newReplica(t)
			tt.setup(t, h, c)
			r, err := restore.VerifyReplica(context.Background(), c)
			if err != nil {
				t.Fatalf("VerifyReplica: %v", err)
			}
			if got, want := r.OK(), tt.wantOK; got != want {
				t.Fatalf("OK()=%v, want %v; problems %v", got, want, r.Problems)
			}
			if got, want := len(r.Problems), len(tt.wantErrs); got != want {
				t.Fatalf("%d problems %v, want %d", got, r.Problems, want)
			}
			for i, want := range tt.wantErrs {
				if !errors.Is(r.Problems[i], want) {
					t.Errorf("problem %d = %v, want %v", i, r.Problems[i], want)
				}
			}
			all := make([]string, len(r.Problems))
			for i, err := range r.Problems {
				all[i] = err.Error()
			}
			for _, msg := range tt.msgs {
				if !strings.Contains(strings.Join(all, "\n"), msg) {
					t.Errorf("problems %q, want one to contain %q", all, msg)
				}
			}
			if got, want := len(r.Gaps), len(tt.gaps); got != want {
				t.Fatalf("gaps %q, want %d", r.Gaps, want)
			}
			for i, g := range tt.gaps {
				if !strings.Contains(r.Gaps[i], g) {
					t.Errorf("gap %q, want it to contain %q", r.Gaps[i], g)
				}
			}
			if tt.wantOK {
				if got, want := len(r.Chain), tt.wantChain; got != want {
					t.Fatalf("chain %v, want %d files", r.Chain, want)
				}
				if r.LatestTXID != 5 {
					t.Fatalf("LatestTXID=%d, want 5", r.LatestTXID)
				}
			}
			if got, want := len(r.NoChecksum), tt.noChecksum; got != want {
				t.Fatalf("NoChecksum=%v, want %d files", r.NoChecksum, want)
			}
		})
	}
}

func TestVerifyReplicaEmpty(t *testing.T) {
	if _, err := restore.VerifyReplica(context.Background(), newReplica(t)); !errors.Is(err, restore.ErrEmptyReplica) {
		t.Fatalf("VerifyReplica err=%v, want ErrEmptyReplica", err)
	}
}
