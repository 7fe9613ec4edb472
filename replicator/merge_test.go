package replicator

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
)

// testLTX encodes one LTX file of TXIDs min..max with the given pages
// (pgno → fill byte pattern seed), commit and pre-apply checksum. Page
// contents are half random, half constant, so LZ4 has work to do.
func testLTX(t testing.TB, pageSize uint32, min, max ltx.TXID, commit uint32, pages map[uint32]uint64, pre ltx.Checksum, flags uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: flags, PageSize: pageSize, Commit: commit, MinTXID: min, MaxTXID: max, Timestamp: int64(max) * 1000, PreApplyChecksum: pre}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, pageSize)
	lock := ltx.LockPgno(pageSize)
	sum := ltx.ChecksumFlag // a snapshot's post-apply checksum is checked
	for pgno := uint32(1); pgno <= commit; pgno++ {
		seed, ok := pages[pgno]
		if !ok || pgno == lock {
			continue
		}
		rng := rand.New(rand.NewPCG(seed, uint64(pgno)))
		for i := range data {
			if i < int(pageSize)/2 {
				data[i] = byte(rng.Uint32())
			} else {
				data[i] = byte(pgno)
			}
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, data); err != nil {
			t.Fatal(err)
		}
		sum = ltx.ChecksumFlag | (sum ^ ltx.ChecksumPage(pgno, data))
	}
	if flags&ltx.HeaderFlagNoChecksum == 0 {
		if min == 1 {
			enc.SetPostApplyChecksum(sum)
		} else {
			enc.SetPostApplyChecksum(ltx.ChecksumFlag | ltx.Checksum(max)*7919)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ltxCompactor is what ltx.Compactor makes of files.
func ltxCompactor(files [][]byte, flags uint32) ([]byte, error) {
	ins := make([]mergeInput, len(files))
	for i, f := range files {
		ins[i] = mergeInput{r: bytes.NewReader(f), size: int64(len(f))}
	}
	var out bytes.Buffer
	err := compactorMerge(context.Background(), &out, ins, flags)
	return out.Bytes(), err
}

func rawMerge(files [][]byte, flags uint32, verify bool) ([]byte, error) {
	ins := make([]mergeInput, len(files))
	for i, f := range files {
		ins[i] = mergeInput{r: bytes.NewReader(f), size: int64(len(f)), verify: verify}
	}
	var out bytes.Buffer
	_, _, err := mergeLTX(context.Background(), &out, ins, flags)
	return out.Bytes(), err
}

// randomChain makes n contiguous files over a database of up to dbPages
// pages, each changing a few random pages, the size changing now and then.
func randomChain(t testing.TB, rng *rand.Rand, pageSize uint32, n int, dbPages uint32, flags uint32, snapshotFirst bool) [][]byte {
	var files [][]byte
	txid := ltx.TXID(1)
	if !snapshotFirst {
		txid = 100
	}
	commit := dbPages
	for i := range n {
		if rng.IntN(5) == 0 {
			commit = max(1, min(dbPages, commit+uint32(rng.IntN(7))-3))
		}
		pages := map[uint32]uint64{}
		if i == 0 && snapshotFirst {
			for p := uint32(1); p <= commit; p++ {
				pages[p] = rng.Uint64()
			}
		} else {
			for range 1 + rng.IntN(6) {
				pages[1+uint32(rng.IntN(int(commit)))] = rng.Uint64()
			}
		}
		var pre ltx.Checksum
		if flags&ltx.HeaderFlagNoChecksum == 0 && txid != 1 {
			pre = ltx.ChecksumFlag | ltx.Checksum(txid-1)*7919
		}
		span := ltx.TXID(1 + rng.IntN(3))
		files = append(files, testLTX(t, pageSize, txid, txid+span-1, commit, pages, pre, flags))
		txid += span
	}
	return files
}

// TestMergeLTX: the raw merge writes the bytes ltx.Compactor writes, for
// chains with and without checksums, a snapshot first, shrinking and
// growing databases, with and without verifying inputs.
func TestMergeLTX(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		dbPages  uint32
		flags    uint32
		snapshot bool
	}{
		{"One", 1, 20, 0, false},
		{"Two", 2, 20, 0, false},
		{"Many", 300, 50, 0, false},
		{"NoChecksum", 40, 50, ltx.HeaderFlagNoChecksum, false},
		{"SnapshotFirst", 10, 30, ltx.HeaderFlagNoChecksum, true}, // a snapshot checks its post-apply checksum: the chain's are made up
		{"PastLockPage", 8, 262150, 0, false},                     // 1 GiB + a few pages of 4 KiB
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(len(tt.name)), uint64(tt.n)))
			files := randomChain(t, rng, 4096, tt.n, tt.dbPages, tt.flags, tt.snapshot)
			want, err := ltxCompactor(files, tt.flags)
			if err != nil {
				t.Fatalf("ltx.Compactor: %v", err)
			}
			for _, verify := range []bool{false, true} {
				got, err := rawMerge(files, tt.flags, verify)
				if err != nil {
					t.Fatalf("mergeLTX(verify=%v): %v", verify, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("mergeLTX(verify=%v): %d bytes differ from ltx.Compactor's %d", verify, len(got), len(want))
				}
			}
			if err := ltx.NewDecoder(bytes.NewReader(want)).Verify(); err != nil {
				t.Fatalf("merged file does not verify: %v", err)
			}
		})
	}
}

// TestMergeLTXRefuses: broken inputs fail the merge; a corrupt page block
// fails it only when verifying (the file checksum covers it).
func TestMergeLTXRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	files := randomChain(t, rng, 4096, 3, 20, 0, false)
	clone := func() [][]byte {
		c := make([][]byte, len(files))
		for i, f := range files {
			c[i] = bytes.Clone(f)
		}
		return c
	}
	tests := []struct {
		name       string
		mutate     func([][]byte) [][]byte
		onlyVerify bool
	}{
		{"Gap", func(f [][]byte) [][]byte { return [][]byte{f[0], f[2]} }, false},
		{"Order", func(f [][]byte) [][]byte { return [][]byte{f[1], f[0]} }, false},
		{"Truncated", func(f [][]byte) [][]byte { f[1] = f[1][:len(f[1])-3]; return f }, false},
		{"TrailingData", func(f [][]byte) [][]byte { f[1] = append(f[1], 0); return f }, false},
		{"BadHeader", func(f [][]byte) [][]byte { f[0][0] = 'X'; return f }, false},
		{"FlippedTrailer", func(f [][]byte) [][]byte { f[2][len(f[2])-1] ^= 1; return f }, true},
		{"FlippedPageByte", func(f [][]byte) [][]byte {
			// The last byte of the first page's LZ4 block is a literal.
			n := int(uint32(f[1][ltx.HeaderSize+6])<<24 | uint32(f[1][ltx.HeaderSize+7])<<16 | uint32(f[1][ltx.HeaderSize+8])<<8 | uint32(f[1][ltx.HeaderSize+9]))
			f[1][ltx.HeaderSize+10+n-1] ^= 1
			return f
		}, true},
		{"Empty", func(f [][]byte) [][]byte { return nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.mutate(clone())
			if _, err := rawMerge(in, 0, true); err == nil {
				t.Errorf("verifying merge succeeded")
			}
			_, err := rawMerge(in, 0, false)
			if tt.onlyVerify && err != nil {
				t.Errorf("trusting merge failed: %v", err)
			} else if !tt.onlyVerify && err == nil {
				t.Errorf("trusting merge succeeded")
			}
		})
	}
	t.Run("ChecksumMismatchSentinel", func(t *testing.T) {
		in := clone()
		in[2][len(in[2])-1] ^= 1
		if _, err := rawMerge(in, 0, true); !errors.Is(err, ltx.ErrChecksumMismatch) {
			t.Errorf("err = %v, want ltx.ErrChecksumMismatch", err)
		}
	})
}

// FuzzMergeLTX: any bytes as inputs never panic the merge, and what it
// writes from them verifies as LTX.
func FuzzMergeLTX(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	files := randomChain(f, rng, 512, 2, 3, 0, false) // small seeds: the fuzzer minimizes what it finds
	f.Add(files[0], files[1], true)
	f.Add(files[0], files[1], false)
	nc := randomChain(f, rng, 512, 2, 2, ltx.HeaderFlagNoChecksum, true)
	f.Add(nc[0], nc[1], true)
	f.Fuzz(func(t *testing.T, a, b []byte, verify bool) {
		for _, in := range [][][]byte{{a}, {a, b}} {
			var flags uint32
			if len(a) > 8 {
				flags = uint32(a[4])<<24 | uint32(a[5])<<16 | uint32(a[6])<<8 | uint32(a[7])
			}
			out, err := rawMerge(in, flags, verify)
			if err != nil {
				continue
			}
			if err := ltx.NewDecoder(bytes.NewReader(out)).Verify(); err != nil {
				t.Fatalf("merged output does not verify: %v", err)
			}
		}
	})
}

// BenchmarkMerge: a batch of 256 one-transaction files of random pages of
// a 1,000-page database, merged by ltx.Compactor and by the raw merge.
func BenchmarkMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	files := randomChain(b, rng, 4096, 256, 1000, 0, false)
	b.Run("Compactor", func(b *testing.B) {
		for b.Loop() {
			if _, err := ltxCompactor(files, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := rawMerge(files, 0, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RawVerify", func(b *testing.B) {
		for b.Loop() {
			if _, err := rawMerge(files, 0, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// frameLTX rewrites an LTX file with its pages in the older LZ4 frame
// format (no size field), as early LTX writers stored them.
func frameLTX(t *testing.T, file []byte) []byte {
	t.Helper()
	dec := ltx.NewDecoder(bytes.NewReader(file))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	hdr := dec.Header()
	var out bytes.Buffer
	h := crc64.New(crcTable)
	write := func(b []byte, hashed bool) {
		out.Write(b)
		if hashed {
			h.Write(b)
		}
	}
	b, _ := hdr.MarshalBinary()
	write(b, true)
	var index []byte
	data := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		off := out.Len()
		ph.Flags = 0
		b, _ := ph.MarshalBinary()
		write(b, true)
		var frame bytes.Buffer
		zw := lz4.NewWriter(&frame)
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		write(frame.Bytes(), false)
		h.Write(data)
		index = binary.AppendUvarint(index, uint64(ph.Pgno))
		index = binary.AppendUvarint(index, uint64(off))
		index = binary.AppendUvarint(index, uint64(out.Len()-off))
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	write(make([]byte, ltx.PageHeaderSize), true)
	index = binary.AppendUvarint(index, 0)
	index = binary.BigEndian.AppendUint64(index, uint64(len(index)))
	write(index, true)
	tr := dec.Trailer()
	tb, _ := tr.MarshalBinary()
	h.Write(tb[:ltx.TrailerChecksumOffset])
	tr.FileChecksum = ltx.ChecksumFlag | ltx.Checksum(h.Sum64())
	tb, _ = tr.MarshalBinary()
	write(tb, false)
	if err := ltx.NewDecoder(bytes.NewReader(out.Bytes())).Verify(); err != nil {
		t.Fatalf("frame-format file does not verify: %v", err)
	}
	return out.Bytes()
}

// TestMergeFramePages: pages in LZ4 frame format are refused by the raw
// merge with errFramePages; the replicator then merges with ltx.Compactor,
// and the file is the same as from block-format inputs.
func TestMergeFramePages(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	files := randomChain(t, rng, 4096, 4, 30, 0, false)
	framed := slices.Clone(files)
	framed[2] = frameLTX(t, files[2])
	if _, err := rawMerge(framed, 0, true); !errors.Is(err, errFramePages) {
		t.Fatalf("raw merge of frame-format pages: err = %v, want errFramePages", err)
	}
	want, err := ltxCompactor(files, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &Replicator{logger: slog.New(slog.DiscardHandler)}
	merge := func() ([]byte, error) {
		ins := make([]mergeInput, len(framed))
		for i, f := range framed {
			ins[i] = mergeInput{r: bytes.NewReader(f), size: int64(len(f)), verify: true}
		}
		pr := r.merged(t.Context(), ins, "test")
		defer pr.Close()
		return io.ReadAll(pr)
	}
	_, err = merge()
	if !errors.Is(err, errFramePages) {
		t.Fatalf("first merge: err = %v, want errFramePages", err)
	}
	r.noteFramePages(fmt.Errorf("compact: %w", err))
	got, err := merge()
	if err != nil {
		t.Fatalf("merge after noteFramePages: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("merge of frame-format inputs differs from ltx.Compactor's of block-format ones")
	}
}
