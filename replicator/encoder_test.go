package replicator

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/superfly/ltx"
)

// TestEncoderCacheMatchesFresh checks that a reused encoder writes exactly
// the bytes a new one does, for files of different shapes in a row,
// including after an encoder abandoned halfway.
func TestEncoderCacheMatchesFresh(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	page := func(size uint32, pgno uint32) []byte {
		b := make([]byte, size)
		for i := range b {
			if i%7 == 0 { // compressible, not constant
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = byte(pgno)
			}
		}
		return b
	}
	type file struct {
		hdr   ltx.Header
		pgnos []uint32
		pages [][]byte
		post  ltx.Checksum
		abort bool // stop after the first page, never close
	}
	var files []file
	for i, tc := range []struct {
		pageSize uint32
		pgnos    []uint32
		snapshot bool
		abort    bool
	}{
		{4096, []uint32{1, 2, 3}, true, false},
		{4096, []uint32{2, 9}, false, false},
		{4096, []uint32{1, 5}, false, true},
		{512, []uint32{1, 2, 3, 4, 5, 6, 7, 8}, true, false},
		{65536, []uint32{3}, false, false},
		{4096, []uint32{1, 2, 3, 4, 100}, false, false},
	} {
		f := file{pgnos: tc.pgnos, abort: tc.abort, post: ltx.ChecksumFlag | ltx.Checksum(i+1)}
		f.hdr = ltx.Header{Version: ltx.Version, PageSize: tc.pageSize, Commit: 100, MinTXID: 2, MaxTXID: ltx.TXID(2 + i), Timestamp: int64(1000 + i), PreApplyChecksum: ltx.ChecksumFlag | 7}
		if tc.snapshot {
			f.hdr.MinTXID, f.hdr.PreApplyChecksum, f.hdr.Commit = 1, 0, uint32(len(tc.pgnos))
		}
		for _, pgno := range tc.pgnos {
			f.pages = append(f.pages, page(tc.pageSize, pgno))
		}
		files = append(files, f)
	}
	encode := func(enc *ltx.Encoder, f file) {
		t.Helper()
		if err := enc.EncodeHeader(f.hdr); err != nil {
			t.Fatal(err)
		}
		for i, pgno := range f.pgnos {
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, f.pages[i]); err != nil {
				t.Fatal(err)
			}
			if f.abort {
				return
			}
		}
		enc.SetPostApplyChecksum(f.post)
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var c encoderCache
	for i, f := range files {
		var want bytes.Buffer
		fresh, err := ltx.NewEncoder(&want)
		if err != nil {
			t.Fatal(err)
		}
		encode(fresh, f)
		var got bytes.Buffer
		enc, err := c.get(&got)
		if err != nil {
			t.Fatal(err)
		}
		encode(enc, f)
		if f.abort {
			continue // its buffered bytes are dropped by the next get
		}
		if err := c.flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("file %d: reused encoder wrote %d bytes, fresh one %d; they differ", i, got.Len(), want.Len())
		}
	}
}
