package replicator

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// TestSpoolReclaim: once nothing in it is needed, the segment being
// written is removed if it grew past reclaimActiveBytes and no record is
// being written (a 292 MB segment of one large transaction stayed on disk
// until a later commit); a small one is kept for the next records.
func TestSpoolReclaim(t *testing.T) {
	tests := []struct {
		name        string
		size        int
		midWrite    bool // another record is being written at the release
		wantRemoved bool
	}{
		{"Large", reclaimActiveBytes + 1, false, true},
		{"Small", 1024, false, false},
		{"LargeWhileWriting", reclaimActiveBytes + 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &spool{dir: t.TempDir()}
			defer s.close()
			rw, err := s.begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rw.Write(bytes.Repeat([]byte{7}, tt.size)); err != nil {
				t.Fatal(err)
			}
			e, err := rw.finish(0, 1, 1, 0, int64(tt.size), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			path := e.seg.path
			var next *recordWriter
			if tt.midWrite {
				if next, err = s.begin(); err != nil {
					t.Fatal(err)
				}
			}
			s.release(e)
			_, err = os.Stat(path)
			if removed := os.IsNotExist(err); removed != tt.wantRemoved {
				t.Fatalf("segment removed=%v (stat: %v), want %v", removed, err, tt.wantRemoved)
			}
			if next != nil {
				next.abort()
			}
			// The spool goes on working.
			rw, err = s.begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rw.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := rw.finish(0, 2, 2, 0, 1, time.Now()); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(s.dir, "*.seg"))
			if len(segs) != 1 {
				t.Fatalf("segments %v, want one", segs)
			}
		})
	}
}

// seedSegment returns a segment holding one valid record: a one-page LTX
// file of TXID 1 at level 0.
func seedSegment(tb testing.TB) []byte {
	tb.Helper()
	var lt bytes.Buffer
	enc, err := ltx.NewEncoder(&lt)
	if err != nil {
		tb.Fatal(err)
	}
	hdr := ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: 512, Commit: 1, MinTXID: 1, MaxTXID: 1, Timestamp: 1}
	if err := enc.EncodeHeader(hdr); err != nil {
		tb.Fatal(err)
	}
	if err := enc.EncodePage(ltx.PageHeader{Pgno: 1}, bytes.Repeat([]byte{3}, 512)); err != nil {
		tb.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, recordHeaderSize, recordHeaderSize+lt.Len())
	copy(b, recordMagic)
	binary.BigEndian.PutUint64(b[8:], 1)
	binary.BigEndian.PutUint64(b[16:], 1)
	binary.BigEndian.PutUint64(b[24:], 42)
	binary.BigEndian.PutUint64(b[32:], uint64(lt.Len()))
	return append(b, lt.Bytes()...)
}

// FuzzSpoolSegment: whatever a segment file holds (a torn write, another
// program's bytes), loading the spool neither fails nor panics, and every
// entry it returns is a verified LTX file inside the segment with a level
// the capture writes and a TXID range.
func FuzzSpoolSegment(f *testing.F) {
	seed := seedSegment(f)
	f.Add(seed)
	f.Add(append(append([]byte{}, seed...), seed[:50]...)) // a torn second record
	f.Add(seed[:len(seed)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001.seg"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := &spool{dir: dir}
		entries, err := s.load()
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		defer s.close()
		for _, e := range entries {
			if (e.Level != 0 && e.Level != replica.SnapshotLevel) || e.MinTXID == 0 || e.MinTXID > e.MaxTXID || e.off+e.Size > int64(len(data)) {
				t.Fatalf("bad entry %+v from %d bytes", e, len(data))
			}
			if err := ltx.NewDecoder(s.reader(e)).Verify(); err != nil {
				t.Fatalf("entry %+v does not verify: %v", e, err)
			}
		}
	})
}
