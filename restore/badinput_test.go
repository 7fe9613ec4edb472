package restore_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

func TestRestoreOutputParentNotDir(t *testing.T) {
	h := newHistory(t, 4096, full(4), tx{4, []uint32{2}})
	c := newReplica(t)
	h.putL0(t, c, 1, 2)
	dir := t.TempDir()
	parent := filepath.Join(dir, "file")
	if err := os.WriteFile(parent, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(parent, "out.db")
	_, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out, Overwrite: true})
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("Restore err=%v, want ENOTDIR", err)
	}
	if got, want := err.Error(), "stat output directory: "+parent+": not a directory"; got != want {
		t.Errorf("Restore err=%q, want %q", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left beside the output's parent: %v", entries)
	}
}

// TestRestoreMixedReplica restores replicas holding files of another
// database; the error names the file and the TXID.
func TestRestoreMixedReplica(t *testing.T) {
	basic := []tx{full(4), {4, []uint32{2}}, {6, []uint32{5, 6}}, {6, []uint32{1, 3}}}
	tests := []struct {
		name  string
		setup func(t *testing.T, h *history, c replica.Client)
		want  error
		msgs  []string
	}{
		{
			name: "ForeignL0",
			setup: func(t *testing.T, h *history, c replica.Client) {
				other := newHistory(t, 4096, full(4), tx{4, []uint32{3}}, tx{4, []uint32{1}})
				h.putL0(t, c, 1, 2)
				put(t, c, 0, other.files[3])
				put(t, c, 0, h.files[4])
			},
			want: restore.ErrChecksumMismatch,
			msgs: []string{"ltx/0/0000000000000003-0000000000000003.ltx: txid 0000000000000003: pre-apply checksum",
				"another database"},
		},
		{
			name: "ForeignSnapshotPageSize",
			setup: func(t *testing.T, h *history, c replica.Client) {
				other := newHistory(t, 512, full(4), tx{4, []uint32{1}})
				put(t, c, 9, other.snapshotAt(t, 2))
				h.putL0(t, c, 1, 4)
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000003-0000000000000003.ltx: txid 0000000000000003: page size 4096",
				"ltx/9/0000000000000001-0000000000000002.ltx) have 512"},
		},
		{
			name: "ForeignSnapshotChecksum",
			setup: func(t *testing.T, h *history, c replica.Client) {
				other := newHistory(t, 4096, full(4), tx{4, []uint32{1}})
				put(t, c, 9, other.snapshotAt(t, 2))
				h.putL0(t, c, 1, 4)
			},
			want: restore.ErrChecksumMismatch,
			msgs: []string{"ltx/0/0000000000000003-0000000000000003.ltx: txid 0000000000000003",
				"of ltx/9/0000000000000001-0000000000000002.ltx"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t, 4096, basic...)
			c := newReplica(t)
			tt.setup(t, h, c)
			out := filepath.Join(t.TempDir(), "out.db")
			_, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Restore err=%v, want %v", err, tt.want)
			}
			for _, msg := range tt.msgs {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("Restore err=%q, want it to contain %q", err, msg)
				}
			}
			assertNoOutput(t, out)
		})
	}
}

// blockingClient serves files starting at or after from with readers that
// block until the context passed to OpenLTXFile is done.
type blockingClient struct {
	replica.Client
	from    ltx.TXID
	once    sync.Once
	blocked chan struct{} // closed when a reader first blocks
}

func (c *blockingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID)
	if err != nil || minTXID < c.from {
		return rc, err
	}
	return &blockingReader{ReadCloser: rc, ctx: ctx, c: c}, nil
}

type blockingReader struct {
	io.ReadCloser
	ctx context.Context
	c   *blockingClient
}

func (r *blockingReader) Read(p []byte) (int, error) {
	r.c.once.Do(func() { close(r.c.blocked) })
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func TestRestoreInterrupted(t *testing.T) {
	h := newHistory(t, 4096, full(4), tx{4, []uint32{2}}, tx{4, []uint32{3}})
	fc := newReplica(t)
	h.putL0(t, fc, 1, 3)
	c := &blockingClient{Client: fc, from: 2, blocked: make(chan struct{})}
	out := filepath.Join(t.TempDir(), "out.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := restore.Restore(ctx, c, restore.Options{OutputPath: out})
		done <- err
	}()
	select {
	case <-c.blocked:
	case err := <-done:
		t.Fatalf("Restore returned before blocking: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a reader to block")
	}
	if matches, _ := filepath.Glob(out + ".tmp-*"); len(matches) == 0 {
		t.Error("no temporary file while restoring")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Restore err=%v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Restore did not return after cancel")
	}
	assertNoOutput(t, out)
}
