package vfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// walWriter builds WAL files the way SQLite does, for tests.
type walWriter struct {
	buf          bytes.Buffer
	pageSize     uint32
	salt1, salt2 uint32
	s1, s2       uint32
	bigEndian    bool
}

func newWALWriter(pageSize, salt1, salt2 uint32) *walWriter {
	w := &walWriter{pageSize: pageSize, salt1: salt1, salt2: salt2, bigEndian: true}
	w.header(0)
	return w
}

func (w *walWriter) header(ckptSeq uint32) {
	b := make([]byte, WALHeaderSize)
	binary.BigEndian.PutUint32(b[0:], walMagicBE)
	binary.BigEndian.PutUint32(b[4:], walVersion)
	ps := w.pageSize
	if ps == 65536 {
		ps = 1
	}
	binary.BigEndian.PutUint32(b[8:], ps)
	binary.BigEndian.PutUint32(b[12:], ckptSeq)
	binary.BigEndian.PutUint32(b[16:], w.salt1)
	binary.BigEndian.PutUint32(b[20:], w.salt2)
	w.s1, w.s2 = WALChecksum(w.bigEndian, 0, 0, b[:24])
	binary.BigEndian.PutUint32(b[24:], w.s1)
	binary.BigEndian.PutUint32(b[28:], w.s2)
	w.buf.Reset()
	w.buf.Write(b)
}

// frame appends a frame for pgno filled with fill; commit != 0 makes it a
// commit frame.
func (w *walWriter) frame(pgno, commit uint32, fill byte) {
	h := make([]byte, WALFrameHeaderSize)
	binary.BigEndian.PutUint32(h[0:], pgno)
	binary.BigEndian.PutUint32(h[4:], commit)
	binary.BigEndian.PutUint32(h[8:], w.salt1)
	binary.BigEndian.PutUint32(h[12:], w.salt2)
	data := bytes.Repeat([]byte{fill}, int(w.pageSize))
	w.s1, w.s2 = WALChecksum(w.bigEndian, w.s1, w.s2, h[:8])
	w.s1, w.s2 = WALChecksum(w.bigEndian, w.s1, w.s2, data)
	binary.BigEndian.PutUint32(h[16:], w.s1)
	binary.BigEndian.PutUint32(h[20:], w.s2)
	w.buf.Write(h)
	w.buf.Write(data)
}

func (w *walWriter) write(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, w.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseWALHeader(t *testing.T) {
	valid := newWALWriter(4096, 1, 2).buf.Bytes()
	mutate := func(off int, v byte) []byte {
		b := append([]byte(nil), valid...)
		b[off] = v
		return b
	}
	tests := []struct {
		name    string
		b       []byte
		wantErr bool
	}{
		{"Valid", valid, false},
		{"Short", valid[:20], true},
		{"BadMagic", mutate(3, 0x00), true},
		{"BadVersion", mutate(7, 0x00), true},
		{"BadPageSize", mutate(10, 0x11), true},
		{"BadChecksum", mutate(27, valid[27]^0xff), true},
		{"SaltChangedWithoutChecksum", mutate(19, valid[19]^1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseWALHeader(tt.b)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ParseWALHeader() err=%v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidWALHeader) {
				t.Fatalf("err=%v, want ErrInvalidWALHeader", err)
			}
			if err == nil && (h.PageSize != 4096 || h.Salt1 != 1 || h.Salt2 != 2) {
				t.Fatalf("header=%+v", h)
			}
		})
	}
	t.Run("PageSize65536", func(t *testing.T) {
		h, err := ParseWALHeader(newWALWriter(65536, 1, 2).buf.Bytes())
		if err != nil || h.PageSize != 65536 {
			t.Fatalf("h=%+v err=%v", h, err)
		}
	})
}

func TestFollower(t *testing.T) {
	t.Run("CommittedOnly", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db-wal")
		w := newWALWriter(512, 7, 8)
		w.frame(1, 0, 'a')
		w.frame(2, 2, 'b') // txn 1: pages 1,2
		w.frame(2, 0, 'c')
		w.frame(3, 3, 'd') // txn 2: pages 2,3
		w.frame(1, 0, 'e') // uncommitted
		w.write(t, path)

		f := NewFollower(path)
		defer f.Close()
		hdr, st, err := f.CheckHeader()
		if err != nil || st != WALNewGeneration {
			t.Fatalf("CheckHeader() st=%v err=%v", st, err)
		}
		f.Follow(hdr)
		txns, err := f.ReadTxns(1<<20, 0, NoLimit)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(txns), 2; got != want {
			t.Fatalf("len(txns)=%d, want %d", got, want)
		}
		if got, want := txns[1].Commit, uint32(3); got != want {
			t.Fatalf("commit=%d, want %d", got, want)
		}
		if got, want := len(txns[1].Pages), 2; got != want {
			t.Fatalf("pages=%d, want %d", got, want)
		}
		buf := make([]byte, 512)
		off, ok := f.Lookup(2)
		if !ok {
			t.Fatal("page 2 not indexed")
		}
		if _, err := f.ReadAt(buf, off); err != nil || buf[0] != 'c' {
			t.Fatalf("page 2 = %q err=%v, want last committed version 'c'", buf[0], err)
		}
		if _, st, _ := f.CheckHeader(); st != WALSameGen {
			t.Fatalf("st=%v, want WALSameGen", st)
		}

		// Completing the open transaction makes it visible, and only it.
		w.frame(4, 4, 'f')
		w.write(t, path)
		txns, err = f.ReadTxns(1<<20, 0, NoLimit)
		if err != nil || len(txns) != 1 || len(txns[0].Pages) != 2 || txns[0].Commit != 4 {
			t.Fatalf("txns=%+v err=%v", txns, err)
		}
	})

	t.Run("ChecksumBreakStops", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db-wal")
		w := newWALWriter(512, 7, 8)
		w.frame(1, 1, 'a')
		w.frame(1, 1, 'b')
		b := w.buf.Bytes()
		b[len(b)-1] ^= 0xff // corrupt the second transaction's page
		w.write(t, path)
		f := NewFollower(path)
		defer f.Close()
		hdr, _, _ := f.CheckHeader()
		f.Follow(hdr)
		txns, err := f.ReadTxns(1<<20, 0, NoLimit)
		if err != nil || len(txns) != 1 {
			t.Fatalf("len(txns)=%d err=%v, want 1", len(txns), err)
		}
	})

	t.Run("StaleFramesOfOldGeneration", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db-wal")
		old := newWALWriter(512, 1, 1)
		for i := 0; i < 5; i++ {
			old.frame(uint32(i+1), uint32(i+1), 'o')
		}
		cur := newWALWriter(512, 2, 2)
		cur.frame(1, 1, 'n')
		b := append([]byte(nil), old.buf.Bytes()...)
		copy(b, cur.buf.Bytes()) // restart overwrote the head only
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f := NewFollower(path)
		defer f.Close()
		hdr, _, _ := f.CheckHeader()
		f.Follow(hdr)
		txns, err := f.ReadTxns(1<<20, 0, NoLimit)
		if err != nil || len(txns) != 1 {
			t.Fatalf("len(txns)=%d err=%v, want 1 (old frames have other salts)", len(txns), err)
		}
	})

	t.Run("NewGenerationAndMissing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db-wal")
		f := NewFollower(path)
		defer f.Close()
		if _, st, err := f.CheckHeader(); st != WALMissing || err != nil {
			t.Fatalf("st=%v err=%v, want WALMissing", st, err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, st, _ := f.CheckHeader(); st != WALEmpty {
			t.Fatalf("st=%v, want WALEmpty", st)
		}
		w := newWALWriter(512, 1, 1)
		w.write(t, path)
		hdr, st, _ := f.CheckHeader()
		if st != WALNewGeneration {
			t.Fatalf("st=%v, want WALNewGeneration", st)
		}
		f.Follow(hdr)
		w2 := newWALWriter(512, 3, 4)
		w2.write(t, path)
		if _, st, _ := f.CheckHeader(); st != WALNewGeneration {
			t.Fatalf("st=%v, want WALNewGeneration after restart", st)
		}
	})

	t.Run("LargeTransactionIsNotSplit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db-wal")
		w := newWALWriter(512, 7, 8)
		for i := uint32(1); i < 300; i++ {
			w.frame(i, 0, byte(i))
		}
		w.frame(300, 300, 1)
		w.frame(1, 300, 2)
		w.write(t, path)
		f := NewFollower(path)
		defer f.Close()
		hdr, _, _ := f.CheckHeader()
		f.Follow(hdr)
		txns, err := f.ReadTxns(4096, 0, NoLimit) // far smaller than the transaction
		if err != nil || len(txns) != 1 || len(txns[0].Pages) != 300 {
			t.Fatalf("txns=%d err=%v, want one whole transaction", len(txns), err)
		}
		txns, err = f.ReadTxns(4096, 0, NoLimit)
		if err != nil || len(txns) != 1 {
			t.Fatalf("second read: txns=%d err=%v", len(txns), err)
		}
	})
}

// TestFollowerRealWAL reads a WAL written by SQLite 3.40 (testdata/real:
// three transactions, see testdata/README).
func TestFollowerRealWAL(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/real/app.db-wal")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.db-wal")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f := NewFollower(path)
	defer f.Close()
	hdr, st, err := f.CheckHeader()
	if err != nil || st != WALNewGeneration {
		t.Fatalf("st=%v err=%v", st, err)
	}
	f.Follow(hdr)
	txns, err := f.ReadTxns(1<<30, 0, NoLimit)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(txns), 3; got != want {
		t.Fatalf("len(txns)=%d, want %d", got, want)
	}
	if f.Offset() != txns[2].End {
		t.Fatalf("offset=%d, want %d", f.Offset(), txns[2].End)
	}
}

func FuzzParseWALHeader(f *testing.F) {
	f.Add(newWALWriter(4096, 1, 2).buf.Bytes())
	f.Add(newWALWriter(512, 0xdead, 0xbeef).buf.Bytes())
	if b, err := os.ReadFile("testdata/real/app.db-wal"); err == nil && len(b) >= WALHeaderSize {
		f.Add(b[:WALHeaderSize])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseWALHeader(b)
		if err != nil {
			return
		}
		// What is accepted re-encodes identically.
		w := &walWriter{pageSize: h.PageSize, salt1: h.Salt1, salt2: h.Salt2, bigEndian: h.BigEndian()}
		w.header(h.CkptSeq)
		got := w.buf.Bytes()
		want := b[:WALHeaderSize]
		if h.Magic == walMagicLE {
			binary.BigEndian.PutUint32(got[0:], walMagicLE)
			s1, s2 := WALChecksum(false, 0, 0, got[:24])
			binary.BigEndian.PutUint32(got[24:], s1)
			binary.BigEndian.PutUint32(got[28:], s2)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("re-encoded header differs:\n got %x\nwant %x", got, want)
		}
	})
}

func FuzzFollower(f *testing.F) {
	w := newWALWriter(512, 7, 8)
	w.frame(1, 0, 'a')
	w.frame(2, 2, 'b')
	f.Add(w.buf.Bytes())
	if b, err := os.ReadFile("testdata/real/app.db-wal"); err == nil {
		f.Add(b)
	}
	path := filepath.Join(f.TempDir(), "db-wal")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fol := NewFollower(path)
		defer fol.Close()
		hdr, st, err := fol.CheckHeader()
		if err != nil || st != WALNewGeneration {
			return
		}
		fol.Follow(hdr)
		txns, err := fol.ReadTxns(1<<20, 0, NoLimit)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txns {
			if tx.Commit == 0 || tx.End <= tx.Start || tx.End > int64(len(b)) {
				t.Fatalf("bad txn %+v", tx)
			}
		}
	})
}

func BenchmarkWALChecksum(b *testing.B) {
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		WALChecksum(false, 1, 2, buf)
	}
}

// TestFollowerTrustsWALIndex reads the WAL of testdata/savepoint-spill,
// whose last committed transaction does not pass the checksum chain.
func TestFollowerTrustsWALIndex(t *testing.T) {
	tests := []struct {
		name     string
		trusted  uint32
		limit    uint32 // no frame past it is read
		wantTxns int    // -1: some, every one ending by frame limit
	}{
		{"ChecksumsOnly", 0, NoLimit, 8},
		{"TrustedUpToMxFrame", 115, NoLimit, 9},
		{"TrustedPartWay", 103, NoLimit, 8},
		{"ExactUpToMxFrame", 115, 115, 9},
		// The chain holds past frame 50, but the live index says frame 50
		// is the last committed one: nothing past it is read.
		{"ExactPartWay", 50, 50, -1},
		{"ExactNothing", 0, 0, 0},
		// No wal-index (an owner that has not read): the step's bound is
		// the file's size when it started; frames written after it are
		// the next step's, however valid.
		{"LimitPartWay", 0, 50, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFollower("testdata/savepoint-spill/app.db-wal")
			defer f.Close()
			hdr, _, err := f.CheckHeader()
			if err != nil {
				t.Fatal(err)
			}
			f.Follow(hdr)
			txns, err := f.ReadTxns(1<<30, tt.trusted, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantTxns < 0 {
				if len(txns) == 0 || len(txns) >= 8 || f.Offset() > WALHeaderSize+int64(tt.limit)*hdr.FrameSize() {
					t.Fatalf("len(txns)=%d offset=%d, want txns ending by frame %d", len(txns), f.Offset(), tt.limit)
				}
				if more, err := f.ReadTxns(1<<30, tt.trusted, tt.limit); err != nil || len(more) != 0 {
					t.Fatalf("a second read within the limit: %d txns, %v", len(more), err)
				}
				return
			}
			if got := len(txns); got != tt.wantTxns {
				t.Fatalf("len(txns)=%d, want %d", got, tt.wantTxns)
			}
			if tt.trusted == 115 {
				last := txns[len(txns)-1]
				if last.Commit != 54 || len(last.Pages) != 12 || f.Offset() != WALHeaderSize+115*hdr.FrameSize() {
					t.Fatalf("last txn commit=%d pages=%d offset=%d", last.Commit, len(last.Pages), f.Offset())
				}
			}
		})
	}
}

// BenchmarkReadTxns reads a WAL of 2,000 one-page transactions (a busy
// writer's step), with the checksum chain checked and with every frame
// known committed (trusted).
func BenchmarkReadTxns(b *testing.B) {
	const txns = 2000
	w := newWALWriter(4096, 7, 9)
	for i := 0; i < txns; i++ {
		w.frame(uint32(2+i/40), uint32(2+i/40), byte(i))
	}
	path := filepath.Join(b.TempDir(), "app.db-wal")
	if err := os.WriteFile(path, w.buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, trusted := range []uint32{0, txns} {
		b.Run(fmt.Sprintf("trusted=%d", trusted), func(b *testing.B) {
			f := NewFollower(path)
			defer f.Close()
			b.SetBytes(int64(len(w.buf.Bytes())))
			for i := 0; i < b.N; i++ {
				hdr, _, err := f.CheckHeader()
				if err != nil {
					b.Fatal(err)
				}
				f.Follow(hdr)
				got, err := f.ReadTxns(1<<30, trusted, NoLimit)
				if err != nil || len(got) != txns {
					b.Fatalf("%d txns, %v", len(got), err)
				}
			}
		})
	}
}

// TestFollowerSucceeds: a header in the same file follows the generation
// followed if salt-1 or the checkpoint sequence moved by 1 to one more
// than the resets counted since (two wal_checkpoint(TRUNCATE) in a row
// move both by two); a larger jump, or none, is a missed generation; in a
// new file nothing can be told (true).
func TestFollowerSucceeds(t *testing.T) {
	tests := []struct {
		name        string
		salt1, ckpt uint32
		counted     uint64
		newFile     bool
		want        bool
	}{
		{"NextRestart", 101, 6, 1, false, true},
		{"TwoTruncations", 102, 7, 2, false, true},
		{"TwoBumpsOneCounted", 102, 7, 1, false, false},
		{"UncountedJump", 104, 9, 1, false, false},
		{"SaltOnly", 102, 0, 2, false, true},
		{"SequenceOnly", 9999, 6, 0, false, true},
		{"Same", 100, 5, 3, false, false},
		{"RandomSalts", 0x7a3f, 0, 3, false, false},
		{"NewFile", 0x7a3f, 0, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "db-wal")
			w := newWALWriter(512, 100, 1)
			w.header(5)
			w.frame(1, 1, 'a')
			w.write(t, path)
			f := NewFollower(path)
			defer f.Close()
			hdr, _, err := f.CheckHeader()
			if err != nil {
				t.Fatal(err)
			}
			f.Follow(hdr)
			next := newWALWriter(512, tt.salt1, 2)
			next.header(tt.ckpt)
			if tt.newFile {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			}
			next.write(t, path)
			hdr, st, err := f.CheckHeader()
			if err != nil || st != WALNewGeneration {
				t.Fatalf("CheckHeader st=%v err=%v", st, err)
			}
			if got := f.Succeeds(hdr, tt.counted); got != tt.want {
				t.Errorf("Succeeds(salt-1 %d, sequence %d, counted %d) = %v, want %v", tt.salt1, tt.ckpt, tt.counted, got, tt.want)
			}
		})
	}
}

// TestFollowerCountsCommits: CountCommits takes frames 1..mx as SQLite's
// wal-index does (committed, no checksum check); ChainCommits counts by the
// salts and checksum chain, stopping at a stale or broken frame. Neither
// moves the follower.
func TestFollowerCountsCommits(t *testing.T) {
	tests := []struct {
		name  string
		build func(w *walWriter)
		mx    uint32
		count uint32 // CountCommits(mx)
		chain uint32 // ChainCommits
	}{
		{"Empty", func(w *walWriter) {}, 0, 0, 0},
		{"ThreeTxns", func(w *walWriter) {
			w.frame(1, 0, 'a')
			w.frame(2, 2, 'b')
			w.frame(1, 2, 'c')
			w.frame(3, 3, 'd')
		}, 4, 3, 3},
		{"MxStopsCount", func(w *walWriter) {
			w.frame(1, 1, 'a')
			w.frame(1, 1, 'b')
		}, 1, 1, 2},
		{"UncommittedTail", func(w *walWriter) {
			w.frame(1, 1, 'a')
			w.frame(2, 0, 'b')
		}, 1, 1, 1},
		{"StaleFrameEndsChain", func(w *walWriter) {
			w.frame(1, 1, 'a')
			w.salt1++
			w.frame(1, 1, 'b') // another generation's salts
			w.salt1--
		}, 2, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db-wal")
			w := newWALWriter(512, 100, 1)
			tt.build(w)
			w.write(t, path)
			f := NewFollower(path)
			defer f.Close()
			hdr, _, err := f.CheckHeader()
			if err != nil {
				t.Fatal(err)
			}
			if n, err := f.CountCommits(hdr, tt.mx); err != nil || n != tt.count {
				t.Errorf("CountCommits(%d) = %d, %v; want %d", tt.mx, n, err, tt.count)
			}
			if n, err := f.ChainCommits(hdr); err != nil || n != tt.chain {
				t.Errorf("ChainCommits = %d, %v; want %d", n, err, tt.chain)
			}
			if f.Following() {
				t.Error("the follower follows a generation after counting")
			}
		})
	}
}
