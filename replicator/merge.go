package replicator

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/safe"
)

// A raw merge writes one LTX file holding several (contiguous TXID ranges,
// in order) as ltx.Compactor does, with the same bytes, but copies each
// page's LZ4 block instead of decompressing and compressing it again. The
// file checksum covers uncompressed page data, so a page that is written
// is still decompressed once, to hash it. (Through ltx.Compactor every
// input page was decompressed and hashed and every output page compressed
// and hashed again: with the capture's own compression, three LZ4 passes
// and four CRC-64 passes per page of a transaction.)
//
// An input is trusted unless its verify is set: then every page of it is
// decompressed and its file checksum checked, as the LTX decoder does.
// Pages stored in the older LZ4 frame format (no size field) are refused
// with errFramePages; the replicator then merges with ltx.Compactor, which
// reads them.

var (
	errFramePages = errors.New("ltx page in lz4 frame format")
	crcTable      = crc64.MakeTable(crc64.ISO)
)

// mergeInput is one LTX file to merge: its bytes, its size if known (it
// sizes the read buffer; 0 for unknown) and whether to verify it.
type mergeInput struct {
	r      io.Reader
	size   int64
	verify bool
}

// rawInput reads the page blocks of one input in order.
type rawInput struct {
	idx   int
	br    *bufio.Reader
	hdr   ltx.Header
	hash  hash.Hash64 // when verifying
	pgno  uint32      // page of block; 0 once the page block ended
	block []byte      // compressed data of pgno
	buf   []byte      // read buffer for block
	scr   []byte      // scratch for decompressing (verify)
	pages int
}

func newRawInput(idx int, in mergeInput) (*rawInput, error) {
	size := 64 << 10
	if in.size > 0 {
		size = int(min(max(in.size, 4<<10), 64<<10))
	}
	ri := &rawInput{idx: idx, br: bufio.NewReaderSize(in.r, size)}
	if in.verify {
		ri.hash = crc64.New(crcTable)
	}
	b := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(ri.br, b); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if err := ri.hdr.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("unmarshal header: %w", err)
	}
	if err := ri.hdr.Validate(); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	ri.hashed(b)
	return ri, nil
}

func (ri *rawInput) hashed(b []byte) {
	if ri.hash != nil {
		_, _ = ri.hash.Write(b)
	}
}

// next reads the next page block; at the end of the page block it reads
// the rest of the file (the page index and trailer) and sets pgno to 0.
func (ri *rawInput) next() error {
	var ph [ltx.PageHeaderSize + 4]byte
	if _, err := io.ReadFull(ri.br, ph[:ltx.PageHeaderSize]); err != nil {
		return fmt.Errorf("read page header: %w", unexpected(err))
	}
	ri.hashed(ph[:ltx.PageHeaderSize])
	var hdr ltx.PageHeader
	_ = hdr.UnmarshalBinary(ph[:])
	if hdr.IsZero() {
		ri.pgno = 0
		return nil
	}
	if err := hdr.Validate(); err != nil {
		return err
	}
	if hdr.Flags&ltx.PageHeaderFlagSize == 0 {
		return errFramePages
	}
	if hdr.Pgno <= ri.pgno {
		return fmt.Errorf("page %d after page %d", hdr.Pgno, ri.pgno)
	}
	if hdr.Pgno > ri.hdr.Commit || hdr.Pgno == ltx.LockPgno(ri.hdr.PageSize) {
		return fmt.Errorf("page %d out of range (commit %d, page size %d)", hdr.Pgno, ri.hdr.Commit, ri.hdr.PageSize)
	}
	if _, err := io.ReadFull(ri.br, ph[ltx.PageHeaderSize:]); err != nil {
		return fmt.Errorf("read page %d size: %w", hdr.Pgno, unexpected(err))
	}
	ri.hashed(ph[ltx.PageHeaderSize:])
	n := binary.BigEndian.Uint32(ph[ltx.PageHeaderSize:])
	if n == 0 || int64(n) > int64(lz4.CompressBlockBound(int(ri.hdr.PageSize))) {
		return fmt.Errorf("page %d: block size %d out of range", hdr.Pgno, n)
	}
	if cap(ri.buf) < int(n) {
		ri.buf = make([]byte, lz4.CompressBlockBound(int(ri.hdr.PageSize)))
	}
	ri.block = ri.buf[:n]
	if _, err := io.ReadFull(ri.br, ri.block); err != nil {
		return fmt.Errorf("read page %d: %w", hdr.Pgno, unexpected(err))
	}
	if ri.hash != nil {
		if ri.scr == nil {
			ri.scr = make([]byte, ri.hdr.PageSize)
		}
		if err := uncompressPage(ri.block, ri.scr); err != nil {
			return fmt.Errorf("page %d: %w", hdr.Pgno, err)
		}
		ri.hashed(ri.scr)
	}
	ri.pgno = hdr.Pgno
	ri.pages++
	return nil
}

// finish reads the page index and trailer after the page block and, when
// verifying, checks the file checksum. It returns the trailer.
func (ri *rawInput) finish() (ltx.Trailer, error) {
	var t ltx.Trailer
	entries := 0
	for {
		pgno, err := ri.uvarint()
		if err != nil {
			return t, fmt.Errorf("read page index: %w", err)
		}
		if pgno == 0 {
			break
		}
		if _, err := ri.uvarint(); err != nil { // offset
			return t, fmt.Errorf("read page index: %w", err)
		}
		if _, err := ri.uvarint(); err != nil { // size
			return t, fmt.Errorf("read page index: %w", err)
		}
		entries++
	}
	if entries != ri.pages {
		return t, fmt.Errorf("page index has %d entries for %d pages", entries, ri.pages)
	}
	b := make([]byte, 8+ltx.TrailerSize)
	if _, err := io.ReadFull(ri.br, b); err != nil {
		return t, fmt.Errorf("read trailer: %w", unexpected(err))
	}
	ri.hashed(b[:8+ltx.TrailerChecksumOffset])
	_ = t.UnmarshalBinary(b[8:])
	if _, err := ri.br.ReadByte(); err == nil {
		return t, errors.New("data after the trailer")
	} else if !errors.Is(err, io.EOF) {
		return t, fmt.Errorf("read after trailer: %w", err)
	}
	if ri.hash != nil && ltx.ChecksumFlag|ltx.Checksum(ri.hash.Sum64()) != t.FileChecksum {
		return t, ltx.ErrChecksumMismatch
	}
	return t, nil
}

func (ri *rawInput) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(ri.br)
	if err != nil {
		return 0, unexpected(err)
	}
	if ri.hash != nil {
		var b [binary.MaxVarintLen64]byte
		ri.hashed(b[:binary.PutUvarint(b[:], v)])
	}
	return v, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func uncompressPage(block, page []byte) error {
	n, err := lz4.UncompressBlock(block, page)
	if err != nil {
		return fmt.Errorf("decompress block: %w", err)
	}
	if n != len(page) {
		return fmt.Errorf("decompressed %d bytes, page size %d", n, len(page))
	}
	return nil
}

// inputHeap orders the inputs by their current page, and the newest input
// (the highest index) first among those at the same page.
type inputHeap []*rawInput

func (h inputHeap) Len() int { return len(h) }
func (h inputHeap) Less(i, j int) bool {
	if h[i].pgno != h[j].pgno {
		return h[i].pgno < h[j].pgno
	}
	return h[i].idx > h[j].idx
}
func (h inputHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *inputHeap) Push(x any)   { *h = append(*h, x.(*rawInput)) }
func (h *inputHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// rawOutput writes the merged file, hashing what the LTX encoder hashes.
type rawOutput struct {
	w     io.Writer
	hash  hash.Hash64
	n     int64
	index []byte
	page  []byte // scratch for decompressing
	err   error
}

func (o *rawOutput) write(b []byte, hashed bool) {
	if o.err != nil {
		return
	}
	if _, err := o.w.Write(b); err != nil {
		o.err = err
		return
	}
	if hashed {
		_, _ = o.hash.Write(b)
	}
	o.n += int64(len(b))
}

func (o *rawOutput) writePage(pgno uint32, block []byte) error {
	if err := uncompressPage(block, o.page); err != nil {
		return fmt.Errorf("page %d: %w", pgno, err)
	}
	off := o.n
	var ph [ltx.PageHeaderSize + 4]byte
	binary.BigEndian.PutUint32(ph[0:], pgno)
	binary.BigEndian.PutUint16(ph[4:], ltx.PageHeaderFlagSize)
	binary.BigEndian.PutUint32(ph[ltx.PageHeaderSize:], uint32(len(block)))
	o.write(ph[:], true)
	o.write(block, false)
	_, _ = o.hash.Write(o.page)
	o.index = binary.AppendUvarint(o.index, uint64(pgno))
	o.index = binary.AppendUvarint(o.index, uint64(off))
	o.index = binary.AppendUvarint(o.index, uint64(o.n-off))
	return o.err
}

// mergeLTX writes to w one LTX file holding the inputs, which must have
// one page size and contiguous TXID ranges, in TXID order; its header has
// flags. It returns the header and trailer written.
func mergeLTX(ctx context.Context, w io.Writer, inputs []mergeInput, flags uint32) (ltx.Header, ltx.Trailer, error) {
	var hdr ltx.Header
	var trailer ltx.Trailer
	if len(inputs) == 0 {
		return hdr, trailer, errors.New("merge: no inputs")
	}
	ins := make([]*rawInput, len(inputs))
	for i, in := range inputs {
		ri, err := newRawInput(i, in)
		if err != nil {
			return hdr, trailer, fmt.Errorf("merge: input %d: %w", i, err)
		}
		if i > 0 {
			prev := ins[i-1].hdr
			if ri.hdr.PageSize != prev.PageSize {
				return hdr, trailer, fmt.Errorf("merge: input %d: page size %d after %d", i, ri.hdr.PageSize, prev.PageSize)
			}
			if ri.hdr.MinTXID != prev.MaxTXID+1 {
				return hdr, trailer, fmt.Errorf("merge: input %d: TXIDs %s-%s after %s", i, ri.hdr.MinTXID, ri.hdr.MaxTXID, prev.MaxTXID)
			}
		}
		ins[i] = ri
	}
	first, last := ins[0].hdr, ins[len(ins)-1].hdr
	hdr = ltx.Header{
		Version:          ltx.Version,
		Flags:            flags,
		PageSize:         first.PageSize,
		Commit:           last.Commit,
		MinTXID:          first.MinTXID,
		MaxTXID:          last.MaxTXID,
		Timestamp:        last.Timestamp,
		PreApplyChecksum: first.PreApplyChecksum,
	}
	if err := hdr.Validate(); err != nil {
		return hdr, trailer, fmt.Errorf("merge: header: %w", err)
	}
	out := &rawOutput{w: w, hash: crc64.New(crcTable), page: make([]byte, hdr.PageSize)}
	b, _ := hdr.MarshalBinary()
	out.write(b, true)

	h := make(inputHeap, 0, len(ins))
	for _, ri := range ins {
		if err := ri.next(); err != nil {
			return hdr, trailer, fmt.Errorf("merge: input %d: %w", ri.idx, err)
		}
		if ri.pgno != 0 {
			h = append(h, ri)
		}
	}
	heap.Init(&h)
	var prev uint32
	lock := ltx.LockPgno(hdr.PageSize)
	for len(h) > 0 {
		if err := ctx.Err(); err != nil {
			return hdr, trailer, err
		}
		top := h[0]
		pgno := top.pgno
		if pgno <= hdr.Commit {
			if hdr.IsSnapshot() && pgno != prev+1 && !(prev+1 == lock && pgno == lock+1) {
				return hdr, trailer, fmt.Errorf("merge: snapshot page %d after %d", pgno, prev)
			}
			if err := out.writePage(pgno, top.block); err != nil {
				return hdr, trailer, fmt.Errorf("merge: write: %w", err)
			}
			prev = pgno
		}
		// Advance every input at this page (the newest was written).
		for len(h) > 0 && h[0].pgno == pgno {
			ri := h[0]
			if err := ri.next(); err != nil {
				return hdr, trailer, fmt.Errorf("merge: input %d: %w", ri.idx, err)
			}
			if ri.pgno == 0 {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
		}
	}
	if hdr.IsSnapshot() && prev != hdr.Commit && !(prev+1 == lock && hdr.Commit == lock) {
		return hdr, trailer, fmt.Errorf("merge: snapshot ends at page %d of %d", prev, hdr.Commit)
	}
	for _, ri := range ins {
		t, err := ri.finish()
		if err != nil {
			return hdr, trailer, fmt.Errorf("merge: input %d: %w", ri.idx, err)
		}
		trailer.PostApplyChecksum = t.PostApplyChecksum // the last input's
	}

	// End of the page block, the page index, its size, the trailer.
	out.write(make([]byte, ltx.PageHeaderSize), true)
	out.index = binary.AppendUvarint(out.index, 0)
	out.index = binary.BigEndian.AppendUint64(out.index, uint64(int64(len(out.index))))
	out.write(out.index, true)
	tb, _ := trailer.MarshalBinary()
	_, _ = out.hash.Write(tb[:ltx.TrailerChecksumOffset])
	trailer.FileChecksum = ltx.ChecksumFlag | ltx.Checksum(out.hash.Sum64())
	if err := trailer.Validate(hdr); err != nil {
		return hdr, trailer, fmt.Errorf("merge: trailer: %w", err)
	}
	tb, _ = trailer.MarshalBinary()
	out.write(tb, false)
	if out.err != nil {
		return hdr, trailer, fmt.Errorf("merge: write: %w", out.err)
	}
	return hdr, trailer, nil
}

// merged returns the inputs merged into one LTX file, as a pipe a
// goroutine writes (a panic there fails the read, not the host). After a
// merge found pages in LZ4 frame format (noteFramePages), ltx.Compactor
// merges instead.
func (r *Replicator) merged(ctx context.Context, ins []mergeInput, name string) *io.PipeReader {
	pr, pw := io.Pipe()
	// The merge writes a page at a time; through a bare pipe each write was
	// one hand-off between goroutines and one write to the replica.
	bw := bufio.NewWriterSize(pw, mergeBufSize)
	flags, framed := r.headerFlags(), r.framePages.Load()
	go func() {
		var err error
		if perr := safe.Run(r.logger, "merge", func() {
			if framed {
				err = compactorMerge(ctx, bw, ins, flags)
			} else {
				_, _, err = mergeLTX(ctx, bw, ins, flags)
			}
			if err == nil {
				err = bw.Flush()
			}
		}); perr != nil {
			err = perr
		}
		if err != nil {
			err = fmt.Errorf("merge %s: %w", name, err)
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// compactorMerge merges with ltx.Compactor, which decodes and encodes every
// page, and reads pages in LZ4 frame format too.
func compactorMerge(ctx context.Context, w io.Writer, ins []mergeInput, flags uint32) error {
	rdrs := make([]io.Reader, len(ins))
	for i, in := range ins {
		rdrs[i] = bufio.NewReaderSize(in.r, int(min(max(in.size, 4<<10), 64<<10)))
	}
	cmp, err := ltx.NewCompactor(w, rdrs)
	if err != nil {
		return err
	}
	cmp.HeaderFlags = flags
	return cmp.Compact(ctx)
}

// noteFramePages switches later merges to ltx.Compactor if err says a
// merge met pages in LZ4 frame format (a replica written by an older LTX
// library).
func (r *Replicator) noteFramePages(err error) {
	if errors.Is(err, errFramePages) && !r.framePages.Swap(true) {
		r.logger.Info("the replica holds LTX pages in the older LZ4 frame format; merging with ltx.Compactor from now on")
	}
}
