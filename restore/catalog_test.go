package restore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

// baseMS is the header timestamp of TXID 0 in stamped fixtures; TXID n is
// stamped baseMS + n seconds.
const baseMS = replicatest.Timestamp

// txTime returns the commit time stamped on txid by stamp.
func txTime(txid ltx.TXID) time.Time { return time.UnixMilli(baseMS + int64(txid)*1000) }

// stamp re-encodes the LTX file data with header timestamp ms, keeping its
// pages and checksums.
func stamp(t *testing.T, data []byte, ms int64) []byte {
	t.Helper()
	dec := ltx.NewDecoder(bytes.NewReader(data))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	hdr := dec.Header()
	pages := make(map[uint32][]byte)
	for {
		var ph ltx.PageHeader
		buf := make([]byte, hdr.PageSize)
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pages[ph.Pgno] = buf
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	hdr.Timestamp = ms
	return replicatest.EncodeLTX(t, hdr, pages, dec.Trailer().PostApplyChecksum)
}

// putStamped stores the L0 files of TXIDs from..to, each stamped txTime.
func (h *history) putStamped(t *testing.T, c replica.Client, from, to ltx.TXID) {
	t.Helper()
	for txid := from; txid <= to; txid++ {
		put(t, c, 0, stamp(t, h.files[txid], txTime(txid).UnixMilli()))
	}
}

func TestTXIDAt(t *testing.T) {
	basic := []tx{full(4), {4, []uint32{2}}, {6, []uint32{5, 6}}, {6, []uint32{1, 3}}, {6, []uint32{6}}}
	ms := time.Millisecond
	tests := []struct {
		name     string
		setup    func(t *testing.T, h *history, c replica.Client)
		at       time.Time
		wantTXID ltx.TXID
		wantErr  error
		msgs     []string
	}{
		{name: "Exact", at: txTime(3), wantTXID: 3},
		{name: "Between", at: txTime(3).Add(999 * ms), wantTXID: 3},
		{name: "JustBefore", at: txTime(3).Add(-ms), wantTXID: 2},
		{name: "First", at: txTime(1), wantTXID: 1},
		{name: "Last", at: txTime(5), wantTXID: 5},
		{name: "AfterLast", at: txTime(5).Add(time.Hour), wantTXID: 5},
		{
			name: "BeforeFirst", at: txTime(1).Add(-ms), wantErr: restore.ErrBeforeFirst,
			msgs: []string{"txid 0000000000000001 (1)", txTime(1).UTC().Format(time.RFC3339Nano)},
		},
		{
			// The snapshot ending at 3 is stamped later than TXID 5; the
			// level-0 file ending at 3 gives TXID 3's time.
			name: "PreferLevel0",
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putStamped(t, c, 1, 5)
				put(t, c, replica.SnapshotLevel, stamp(t, h.snapshotAt(t, 3), txTime(9).UnixMilli()))
			},
			at: txTime(4).Add(-ms), wantTXID: 3,
		},
		{
			// Nothing before the oldest snapshot (1-3) can be restored.
			name: "OldestSnapshot",
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putStamped(t, c, 2, 5)
				put(t, c, replica.SnapshotLevel, stamp(t, h.snapshotAt(t, 3), txTime(3).UnixMilli()))
			},
			at: txTime(2), wantErr: restore.ErrBeforeFirst,
			msgs: []string{"txid 0000000000000003 (3)"},
		},
		{
			name:  "Empty",
			setup: func(t *testing.T, h *history, c replica.Client) {},
			at:    txTime(3), wantErr: restore.ErrEmptyReplica,
		},
		{
			name: "NoSnapshot",
			setup: func(t *testing.T, h *history, c replica.Client) {
				h.putStamped(t, c, 2, 5)
			},
			at: txTime(3), wantErr: restore.ErrNoSnapshot,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t, 4096, basic...)
			c := newReplica(t)
			if tt.setup != nil {
				tt.setup(t, h, c)
			} else {
				h.putStamped(t, c, 1, 5)
			}
			p, err := restore.TXIDAt(context.Background(), c, tt.at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("TXIDAt err=%v, want %v", err, tt.wantErr)
			}
			for _, msg := range tt.msgs {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("TXIDAt err=%q, want it to contain %q", err, msg)
				}
			}
			if err != nil {
				return
			}
			if got, want := p.TXID, tt.wantTXID; got != want {
				t.Fatalf("TXIDAt=%d, want %d", got, want)
			}
			if got, want := p.Time, txTime(tt.wantTXID); !got.Equal(want) {
				t.Fatalf("TXIDAt time=%s, want %s", got, want)
			}
		})
	}
}

func TestRestorableRange(t *testing.T) {
	h := newHistory(t, 4096, full(4), tx{4, []uint32{2}}, tx{4, []uint32{3}})
	c := newReplica(t)
	h.putStamped(t, c, 1, 3)
	first, last, err := restore.RestorableRange(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if first.TXID != 1 || !first.Time.Equal(txTime(1)) || last.TXID != 3 || !last.Time.Equal(txTime(3)) {
		t.Fatalf("RestorableRange=%+v, %+v; want txid 1 at %s, txid 3 at %s", first, last, txTime(1), txTime(3))
	}
}

func TestReadHeaderTruncated(t *testing.T) {
	h := newHistory(t, 4096, full(4))
	c := newReplica(t)
	info, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(h.files[1][:50]))
	if err != nil {
		t.Fatal(err)
	}
	info.Level = 0
	if _, err := restore.ReadHeader(context.Background(), c, info); !errors.Is(err, restore.ErrInvalidFile) {
		t.Fatalf("ReadHeader err=%v, want ErrInvalidFile", err)
	}
}
