package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

// newReplica returns a file client on a fresh directory.
func newReplica(t *testing.T) *file.Client {
	t.Helper()
	return file.NewClient(filepath.Join(t.TempDir(), "replica"))
}

// put stores an LTX file at level.
func put(t *testing.T, c replica.Client, level int, data []byte) {
	t.Helper()
	replicatest.WriteFile(t, c, level, data)
}

// assertNoOutput fails if out or any temporary file for it exists.
func assertNoOutput(t *testing.T, out string) {
	t.Helper()
	if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output %s exists after failed restore (err=%v)", out, err)
	}
	assertNoTemp(t, out)
}

// assertNoTemp fails if a temporary file for out is left behind.
func assertNoTemp(t *testing.T, out string) {
	t.Helper()
	matches, err := filepath.Glob(out + ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
}

// history is a replica built from a DB fixture, with the expected images.
type history struct {
	db     *replicatest.DB
	images map[ltx.TXID][]byte // expected database after each TXID
	files  map[ltx.TXID][]byte // L0 file of each TXID
}

// newHistory applies txs (commit size and pages written, by pgno) to a new
// DB, recording each image and L0 file. The first tx must write every page.
func newHistory(t *testing.T, pageSize uint32, txs ...tx) *history {
	t.Helper()
	h := &history{
		db:     replicatest.NewDB(pageSize),
		images: make(map[ltx.TXID][]byte),
		files:  make(map[ltx.TXID][]byte),
	}
	for _, x := range txs {
		h.tx(t, x)
	}
	return h
}

// tx is one transaction: the database size after it and the pages written.
type tx struct {
	commit uint32
	pgnos  []uint32
}

// full returns a tx writing pages 1..n.
func full(n uint32) tx {
	x := tx{commit: n}
	for pgno := uint32(1); pgno <= n; pgno++ {
		x.pgnos = append(x.pgnos, pgno)
	}
	return x
}

func (h *history) tx(t *testing.T, x tx) {
	t.Helper()
	txid := h.db.TXID + 1
	h.files[txid] = h.db.Tx(t, x.commit, h.db.Pages(txid, x.pgnos...))
	h.images[txid] = h.db.Image()
}

// putL0 stores the L0 files of TXIDs from..to.
func (h *history) putL0(t *testing.T, c replica.Client, from, to ltx.TXID) {
	t.Helper()
	for txid := from; txid <= to; txid++ {
		put(t, c, 0, h.files[txid])
	}
}

// l0 returns the L0 files of TXIDs from..to.
func (h *history) l0(from, to ltx.TXID) [][]byte {
	var a [][]byte
	for txid := from; txid <= to; txid++ {
		a = append(a, h.files[txid])
	}
	return a
}

// snapshotAt returns a snapshot of the state after txid.
func (h *history) snapshotAt(t *testing.T, txid ltx.TXID) []byte {
	t.Helper()
	db := replicatest.NewDB(h.db.PageSize)
	db.NoChecksum = h.db.NoChecksum
	for id := ltx.TXID(1); id <= txid; id++ {
		dec := ltx.NewDecoder(bytes.NewReader(h.files[id]))
		if err := dec.DecodeHeader(); err != nil {
			t.Fatal(err)
		}
		pages := make(map[uint32][]byte)
		for {
			var ph ltx.PageHeader
			buf := make([]byte, h.db.PageSize)
			if err := dec.DecodePage(&ph, buf); err != nil {
				break
			}
			pages[ph.Pgno] = buf
		}
		db.Tx(t, dec.Header().Commit, pages)
	}
	return db.Snapshot(t)
}

func TestRestore(t *testing.T) {
	basic := []tx{full(4), {4, []uint32{2}}, {6, []uint32{5, 6}}, {6, []uint32{1, 3}}, {6, []uint32{6}}}
	tests := []struct {
		name      string
		pageSize  uint32
		txs       []tx
		noCksum   bool
		setup     func(t *testing.T, h *history, c replica.Client)
		txid      ltx.TXID // target; 0 = latest
		wantTXID  ltx.TXID
		wantFiles []string
	}{
		{
			name: "L0Only", pageSize: 4096, txs: basic,
			setup:    func(t *testing.T, h *history, c replica.Client) { h.putL0(t, c, 1, 5) },
			wantTXID: 5,
			wantFiles: []string{
				"ltx/0/0000000000000001-0000000000000001.ltx",
				"ltx/0/0000000000000002-0000000000000002.ltx",
				"ltx/0/0000000000000003-0000000000000003.ltx",
				"ltx/0/0000000000000004-0000000000000004.ltx",
				"ltx/0/0000000000000005-0000000000000005.ltx",
			},
		},
		{
			name: "SnapshotOnly", pageSize: 4096, txs: basic,
			setup:     func(t *testing.T, h *history, c replica.Client) { put(t, c, 9, h.snapshotAt(t, 5)) },
			wantTXID:  5,
			wantFiles: []string{"ltx/9/0000000000000001-0000000000000005.ltx"},
		},
		{
			name: "SnapshotMidChain", pageSize: 4096, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 5)
				put(t, c, 9, h.snapshotAt(t, 3))
			},
			wantTXID: 5,
			wantFiles: []string{
				"ltx/9/0000000000000001-0000000000000003.ltx",
				"ltx/0/0000000000000004-0000000000000004.ltx",
				"ltx/0/0000000000000005-0000000000000005.ltx",
			},
		},
		{
			name: "SnapshotBridgesGap", pageSize: 4096, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 2)
				h.putL0(t, c, 4, 5)
				put(t, c, 9, h.snapshotAt(t, 3))
			},
			wantTXID: 5,
		},
		{
			name: "TargetTXID", pageSize: 4096, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 5)
				put(t, c, 9, h.snapshotAt(t, 4))
			},
			txid: 3, wantTXID: 3,
			wantFiles: []string{
				"ltx/0/0000000000000001-0000000000000001.ltx",
				"ltx/0/0000000000000002-0000000000000002.ltx",
				"ltx/0/0000000000000003-0000000000000003.ltx",
			},
		},
		{
			name: "Compaction", pageSize: 4096, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 5)
				put(t, c, 1, replicatest.Compact(t, h.l0(2, 4)...))
			},
			wantTXID: 5,
			wantFiles: []string{
				"ltx/0/0000000000000001-0000000000000001.ltx",
				"ltx/1/0000000000000002-0000000000000004.ltx",
				"ltx/0/0000000000000005-0000000000000005.ltx",
			},
		},
		{
			name: "MergedL0", pageSize: 4096, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				put(t, c, 0, h.files[1])
				put(t, c, 0, replicatest.Compact(t, h.l0(2, 5)...))
			},
			wantTXID: 5,
			wantFiles: []string{
				"ltx/0/0000000000000001-0000000000000001.ltx",
				"ltx/0/0000000000000002-0000000000000005.ltx",
			},
		},
		{
			name: "Shrink", pageSize: 4096,
			txs: []tx{full(8), {8, []uint32{8}}, {3, []uint32{2}}, {3, nil}, {5, []uint32{5}}},
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 5)
			},
			wantTXID: 5,
		},
		{
			name: "ShrinkSnapshot", pageSize: 4096,
			txs: []tx{full(8), {2, []uint32{1}}},
			setup: func(t *testing.T, h *history, c replica.Client) {
				put(t, c, 9, h.snapshotAt(t, 1))
				h.putL0(t, c, 2, 2)
			},
			wantTXID: 2,
		},
		{
			name: "GrowWithoutWrites", pageSize: 4096,
			txs: []tx{full(2), {5, []uint32{5}}},
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 2)
			},
			wantTXID: 2,
		},
		{
			name: "PageSize512", pageSize: 512, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				put(t, c, 9, h.snapshotAt(t, 2))
				h.putL0(t, c, 3, 5)
			},
			wantTXID: 5,
		},
		{
			name: "PageSize65536", pageSize: 65536, txs: basic,
			setup: func(t *testing.T, h *history, c replica.Client) {
				put(t, c, 9, h.snapshotAt(t, 2))
				h.putL0(t, c, 3, 5)
			},
			wantTXID: 5,
		},
		{
			name: "NoChecksum", pageSize: 4096, txs: basic, noCksum: true,
			setup: func(t *testing.T, h *history, c replica.Client) {
				put(t, c, 9, h.snapshotAt(t, 2))
				h.putL0(t, c, 3, 5)
			},
			wantTXID: 5,
		},
		{
			name: "EmptyDatabase", pageSize: 4096, txs: []tx{full(0)},
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putL0(t, c, 1, 1)
			},
			wantTXID: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &history{
				db:     replicatest.NewDB(tt.pageSize),
				images: make(map[ltx.TXID][]byte),
				files:  make(map[ltx.TXID][]byte),
			}
			h.db.NoChecksum = tt.noCksum
			for _, x := range tt.txs {
				h.tx(t, x)
			}
			c := newReplica(t)
			tt.setup(t, h, c)

			out := filepath.Join(t.TempDir(), "out.db")
			var verified string
			res, err := restore.Restore(context.Background(), c, restore.Options{
				OutputPath: out,
				TXID:       tt.txid,
				Verify: func(path string) error {
					verified = path
					return nil
				},
			})
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want := h.images[tt.wantTXID]
			if !bytes.Equal(got, want) {
				t.Fatalf("restored %d bytes differ from the expected %d-byte image at txid %d", len(got), len(want), tt.wantTXID)
			}
			if res.TXID != tt.wantTXID {
				t.Fatalf("Result.TXID=%d, want %d", res.TXID, tt.wantTXID)
			}
			if got, want := res.PageSize, tt.pageSize; got != want {
				t.Fatalf("Result.PageSize=%d, want %d", got, want)
			}
			if got, want := int(res.Pages)*int(res.PageSize), len(want); got != want {
				t.Fatalf("Result.Pages*PageSize=%d, want %d", got, want)
			}
			if tt.wantFiles != nil && strings.Join(res.Files, " ") != strings.Join(tt.wantFiles, " ") {
				t.Fatalf("Result.Files=%v, want %v", res.Files, tt.wantFiles)
			}
			if res.Bytes <= 0 {
				t.Fatalf("Result.Bytes=%d, want > 0", res.Bytes)
			}
			if got, want := res.ChecksumsVerified, !tt.noCksum; got != want {
				t.Fatalf("Result.ChecksumsVerified=%v, want %v", got, want)
			}
			if sum, err := ltx.ChecksumReader(bytes.NewReader(got), int(tt.pageSize)); err != nil {
				t.Fatal(err)
			} else if len(got) > 0 && sum != res.PostApplyChecksum {
				t.Fatalf("Result.PostApplyChecksum=%s, file checksum %s", res.PostApplyChecksum, sum)
			}
			if verified == "" || !strings.HasPrefix(verified, out+".tmp-") {
				t.Fatalf("Verify called with %q, want the temp file %s.tmp-*", verified, out)
			}
			assertNoTemp(t, out)
		})
	}
}

func TestRestoreOverwrite(t *testing.T) {
	h := newHistory(t, 4096, full(3))
	c := newReplica(t)
	h.putL0(t, c, 1, 1)
	out := filepath.Join(t.TempDir(), "out.db")
	if err := os.WriteFile(out, []byte("old database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out, Overwrite: true}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, h.images[1]) {
		t.Fatal("overwritten output differs from the expected image")
	}
	if fi, err := os.Stat(out); err != nil {
		t.Fatal(err)
	} else if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Fatalf("mode %v, want the replaced file's %v", got, want)
	}
	assertNoTemp(t, out)
}

// flipByte returns a copy of b with the byte at i inverted.
func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

func TestRestoreErrors(t *testing.T) {
	basic := []tx{full(4), {4, []uint32{2}}, {6, []uint32{5, 6}}, {6, []uint32{1, 3}}}
	tests := []struct {
		name  string
		setup func(t *testing.T, h *history, c *file.Client, out string) replica.Client
		opts  restore.Options
		want  error
		msgs  []string // each must appear in the error
		keep  bool     // out exists before and must be left as it was
	}{
		{
			name: "MissingDir",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				return file.NewClient(filepath.Join(t.TempDir(), "nope"))
			},
			want: restore.ErrEmptyReplica, msgs: []string{"nope", "replica has no ltx files"},
		},
		{
			name: "EmptyReplica",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				if err := os.MkdirAll(filepath.Join(c.Dir(), "ltx", "0"), 0o755); err != nil {
					t.Fatal(err)
				}
				return c
			},
			want: restore.ErrEmptyReplica, msgs: []string{"replica: replica has no ltx files"},
		},
		{
			name: "NoSnapshot",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 2, 4)
				return c
			},
			want: restore.ErrNoSnapshot, msgs: []string{"none starts at txid 1"},
		},
		{
			name: "CorruptPageData",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 1)
				// Page data is mostly literals: a flipped byte decompresses to
				// different data, caught by the file checksum.
				put(t, c, 0, flipByte(h.files[2], ltx.HeaderSize+ltx.PageHeaderSize+4+1000))
				h.putL0(t, c, 3, 4)
				return c
			},
			want: restore.ErrChecksumMismatch,
			msgs: []string{"ltx/0/0000000000000002-0000000000000002.ltx", "file checksum"},
		},
		{
			name: "CorruptTrailer",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				b := h.files[1]
				put(t, c, 0, flipByte(b, len(b)-1))
				return c
			},
			want: restore.ErrChecksumMismatch,
			msgs: []string{"ltx/0/0000000000000001-0000000000000001.ltx"},
		},
		{
			name: "CorruptHeader",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				put(t, c, 0, h.files[1])
				bad := flipByte(h.files[2], 0) // magic
				if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, bytes.NewReader(bad)); err != nil {
					t.Fatal(err)
				}
				return c
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000002-0000000000000002.ltx", "decode header"},
		},
		{
			name: "TruncatedMidPage",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				put(t, c, 0, h.files[1])
				b := h.files[2]
				if _, err := c.WriteLTXFile(context.Background(), 0, 2, 2, bytes.NewReader(b[:ltx.HeaderSize+50])); err != nil {
					t.Fatal(err)
				}
				return c
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000002-0000000000000002.ltx", "unexpected EOF"},
		},
		{
			name: "TruncatedAtPageBoundary",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				b := h.files[1]
				// Header, then the first page frame: header, size, data.
				size := int(uint32(b[ltx.HeaderSize+6])<<24 | uint32(b[ltx.HeaderSize+7])<<16 |
					uint32(b[ltx.HeaderSize+8])<<8 | uint32(b[ltx.HeaderSize+9]))
				cut := ltx.HeaderSize + ltx.PageHeaderSize + 4 + size
				if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(b[:cut])); err != nil {
					t.Fatal(err)
				}
				return c
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000001-0000000000000001.ltx", "unexpected EOF"},
		},
		{
			name: "TruncatedIndex",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				b := h.files[1]
				if _, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(b[:len(b)-20])); err != nil {
					t.Fatal(err)
				}
				return c
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000001-0000000000000001.ltx"},
		},
		{
			name: "TXIDGap",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 2)
				h.putL0(t, c, 4, 4)
				return c
			},
			want: restore.ErrTXIDGap,
			msgs: []string{"txid gap after 0000000000000002: next file starts at 0000000000000004 (ltx/0/0000000000000004-0000000000000004.ltx)"},
		},
		{
			name: "PreApplyChecksumMismatch",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				// TXID 2 from another history with a different page 3.
				other := newHistory(t, 4096, full(4), tx{4, []uint32{3}}, tx{4, []uint32{1}})
				h.putL0(t, c, 1, 2)
				put(t, c, 0, other.files[3])
				return c
			},
			want: restore.ErrChecksumMismatch,
			msgs: []string{"ltx/0/0000000000000003-0000000000000003.ltx", "pre-apply checksum",
				"ltx/0/0000000000000002-0000000000000002.ltx", "txid 0000000000000002"},
		},
		{
			name: "PostApplyChecksumWrong",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 1)
				var hdr ltx.Header
				if err := hdr.UnmarshalBinary(h.files[2]); err != nil {
					t.Fatal(err)
				}
				bad := replicatest.EncodeLTX(t, hdr, h.db.Pages(2, 2), ltx.ChecksumFlag|0x1234)
				put(t, c, 0, bad)
				return c
			},
			want: restore.ErrChecksumMismatch,
			msgs: []string{"restored database checksum", "8000000000001234", "ltx/0/0000000000000002-0000000000000002.ltx"},
		},
		{
			name: "HeaderDoesNotMatchName",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 2)
				if _, err := c.WriteLTXFile(context.Background(), 0, 3, 3, bytes.NewReader(h.files[4])); err != nil {
					t.Fatal(err)
				}
				return c
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000003-0000000000000003.ltx", "header covers txids 0000000000000004-0000000000000004"},
		},
		{
			name: "PageSizeChange",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				other := newHistory(t, 512, full(4), tx{4, []uint32{1}})
				h.putL0(t, c, 1, 1)
				put(t, c, 0, other.files[2])
				return c
			},
			want: restore.ErrInvalidFile,
			msgs: []string{"ltx/0/0000000000000002-0000000000000002.ltx", "page size 512"},
		},
		{
			name: "TargetPastLatest",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 4)
				return c
			},
			opts: restore.Options{TXID: 9},
			want: restore.ErrTargetNotFound, msgs: []string{"0000000000000009"},
		},
		{
			name: "OutputExists",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 4)
				return c
			},
			want: restore.ErrOutputExists, msgs: []string{"out.db"}, keep: true,
		},
		{
			name: "OutputHasWAL",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 4)
				if err := os.WriteFile(out+"-wal", []byte("wal"), 0o644); err != nil {
					t.Fatal(err)
				}
				return c
			},
			opts: restore.Options{Overwrite: true},
			want: restore.ErrOutputInUse, msgs: []string{"out.db-wal"},
		},
		{
			name: "VerifyFails",
			setup: func(t *testing.T, h *history, c *file.Client, out string) replica.Client {
				h.putL0(t, c, 1, 4)
				return c
			},
			opts: restore.Options{Verify: func(path string) error {
				// Side files a checker may leave are cleaned up too.
				_ = os.WriteFile(path+"-shm", nil, 0o644)
				return errors.New("integrity check: *** in database main ***")
			}},
			want: restore.ErrVerify, msgs: []string{"integrity check"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t, 4096, basic...)
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			c := tt.setup(t, h, newReplica(t), out)
			const old = "existing database"
			if tt.keep {
				if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			opts := tt.opts
			opts.OutputPath = out
			_, err := restore.Restore(context.Background(), c, opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Restore err=%v, want %v", err, tt.want)
			}
			for _, msg := range tt.msgs {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("Restore err=%q, want it to contain %q", err, msg)
				}
			}
			if tt.keep {
				if got, err := os.ReadFile(out); err != nil || string(got) != old {
					t.Fatalf("output changed: %q, %v", got, err)
				}
				assertNoTemp(t, out)
			} else {
				assertNoOutput(t, out)
			}
			if side, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(side) > 0 {
				t.Fatalf("files left behind: %v", side)
			}
		})
	}
}

func TestRestoreCancelled(t *testing.T) {
	h := newHistory(t, 4096, full(4), tx{4, []uint32{1}})
	c := newReplica(t)
	h.putL0(t, c, 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := restore.Restore(ctx, c, restore.Options{OutputPath: out}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Restore err=%v, want context.Canceled", err)
	}
	assertNoOutput(t, out)
}

func TestRestoreLockPage(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 1 GiB sparse database")
	}
	const pageSize = 65536
	lockPgno := ltx.LockPgno(pageSize)
	db := replicatest.NewDB(pageSize)
	c := newReplica(t)
	// A snapshot up to one page past the lock page; most pages are zeros.
	put(t, c, 9, db.Tx(t, lockPgno+1, db.Pages(1, 1, 2, lockPgno-1, lockPgno+1)))
	put(t, c, 0, db.Tx(t, lockPgno+2, db.Pages(2, lockPgno+2)))
	put(t, c, 0, db.Tx(t, lockPgno-3, db.Pages(3, 1)))
	put(t, c, 0, db.Tx(t, lockPgno+1, db.Pages(4, lockPgno+1)))

	out := filepath.Join(t.TempDir(), "out.db")
	res, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := res.PostApplyChecksum, db.Checksum(); got != want {
		t.Fatalf("checksum %s, want %s", got, want)
	}
	fdb, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fdb.Close() }()
	for _, pgno := range []uint32{1, lockPgno - 1, lockPgno, lockPgno + 1} {
		got := make([]byte, pageSize)
		if _, err := fdb.ReadAt(got, int64(pgno-1)*pageSize); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, pageSize)
		switch pgno {
		case 1:
			want = replicatest.Page(pageSize, 1, 3)
		case lockPgno + 1:
			want = replicatest.Page(pageSize, lockPgno+1, 4)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("page %d differs", pgno)
		}
	}
	if fi, err := fdb.Stat(); err != nil {
		t.Fatal(err)
	} else if got, want := fi.Size(), int64(lockPgno+1)*pageSize; got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
}
