package restore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// apply writes chain to the database in one transaction. A file with
// checksums must leave the database with its post-apply checksum; if it
// does not, nothing is committed and the error wraps ErrChecksumMismatch.
// l0 is the level-0 listing the chain was planned from.
func (f *Follower) apply(ctx context.Context, chain, l0 []*ltx.FileInfo, rebuilt bool) (err error) {
	t0 := time.Now()
	tx, err := f.sink.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin a batch: %w", err)
	}
	undo := map[uint32]ltx.Checksum{}
	oldSize, oldTotal := f.size, f.total
	committed := false
	defer func() {
		if committed {
			return
		}
		_ = tx.Rollback()
		for pgno, sum := range undo {
			f.sums[pgno] = sum
		}
		f.size, f.total = oldSize, oldTotal
	}()
	b := &batch{f: f, tx: tx, undo: undo, sinkSize: f.size, zeroed: map[uint32]bool{}, h: ltx.NewHasher()}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pre := prefetch(pctx, f.client, chain)
	for i, fi := range chain {
		if err := b.file(ctx, fi, pre[i]); err != nil {
			return err
		}
	}
	if err := b.finish(); err != nil {
		return err
	}
	to := chain[len(chain)-1].MaxTXID
	appliedAt := f.state.AppliedAt
	if rebuilt {
		appliedAt = time.Time{}
	}
	for _, fi := range l0 {
		if fi.MaxTXID <= to && fi.CreatedAt.After(appliedAt) {
			appliedAt = fi.CreatedAt // covered now, applied or not
		}
	}
	st := f.state
	st.Target = to
	if err := WriteFollowState(f.opts.StatePath, st); err != nil {
		return fmt.Errorf("%w: %w", errState, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	from := f.state.TXID
	f.state = FollowState{Replica: st.Replica, TXID: to, AppliedAt: appliedAt}
	if err := WriteFollowState(f.opts.StatePath, f.state); err != nil {
		return fmt.Errorf("%w: %w", errState, err)
	}
	ev := FollowBatch{From: from, To: to, Files: len(chain), Pages: b.pages, Rebuilt: rebuilt, Took: time.Since(t0)}
	f.log.Info("applied", "from", from, "to", to, "files", ev.Files, "pages", ev.Pages, "took", ev.Took)
	if f.opts.Applied != nil {
		f.opts.Applied(ev)
	}
	return nil
}

// batch is one apply's bookkeeping: the pages' checksums change as pages
// are written (undo keeps their values before the batch), and the sink
// truncates only at the end, so pages that a file cut off and a later
// file's growth brought back without writing them are zeroed then.
type batch struct {
	f        *Follower
	tx       SinkTx
	undo     map[uint32]ltx.Checksum
	sinkSize uint32          // pages in the sink (no truncation until the end)
	zeroed   map[uint32]bool // pages to write as zeros at the end
	pages    int
	h        hash.Hash64
}

func (b *batch) set(pgno uint32, sum ltx.Checksum) {
	f := b.f
	f.grow(pgno)
	if _, ok := b.undo[pgno]; !ok {
		b.undo[pgno] = f.sums[pgno]
	}
	f.total ^= f.sums[pgno] ^ sum
	f.sums[pgno] = sum
}

// extend makes pages size+1..n part of the database, as zeros: written
// as such at the end unless a file of the batch writes them (the sink may
// still hold what a page cut off earlier in the batch had, or not have
// the page at all).
func (b *batch) extend(n uint32) {
	f := b.f
	lock := ltx.LockPgno(f.pageSize)
	for q := f.size + 1; q <= n; q++ {
		if q == lock {
			continue
		}
		b.set(q, pageSum(b.h, q, f.zero))
		b.zeroed[q] = true
	}
	f.size = max(f.size, n)
}

// Prefetching: a batch's small files are downloaded ahead, several at a
// time, into memory (at 50 txn/s on S3 without a PUT cap a one-second
// interval finds about 50 files; one after the other they took about
// 100 ms). Files past prefetchFileMax, or past prefetchTotal bytes ahead,
// are read as they are applied.
const (
	prefetchFileMax = 8 << 20
	prefetchTotal   = 64 << 20
	prefetchAtOnce  = 8
)

// prefetched is one file downloaded ahead: data once done is closed, or err.
type prefetched struct {
	done chan struct{}
	data []byte
	err  error
}

// prefetch starts the downloads of chain's small files and returns one
// entry per file (nil: read it when applied).
func prefetch(ctx context.Context, client replica.Client, chain []*ltx.FileInfo) []*prefetched {
	out := make([]*prefetched, len(chain))
	sem := make(chan struct{}, prefetchAtOnce)
	var total int64
	for i, fi := range chain {
		if fi.Size <= 0 || fi.Size > prefetchFileMax || total+fi.Size > prefetchTotal {
			continue
		}
		total += fi.Size
		p := &prefetched{done: make(chan struct{})}
		out[i] = p
		go func() {
			defer close(p.done)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				p.err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			rc, err := client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID)
			if err != nil {
				p.err = err
				return
			}
			p.data, p.err = io.ReadAll(io.LimitReader(rc, prefetchFileMax+1))
			_ = rc.Close()
		}()
	}
	return out
}

// file applies one LTX file, prefetched (pre) or read now.
func (b *batch) file(ctx context.Context, fi *ltx.FileInfo, pre *prefetched) error {
	f := b.f
	name := fileName(fi)
	var rc io.ReadCloser
	if pre != nil {
		select {
		case <-pre.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if pre.err != nil {
			return fmt.Errorf("read %s: %w", name, pre.err)
		}
		rc = io.NopCloser(bytes.NewReader(pre.data))
	} else {
		var err error
		if rc, err = f.client.OpenLTXFile(ctx, fi.Level, fi.MinTXID, fi.MaxTXID); err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
	}
	defer func() { _ = rc.Close() }()
	dec := ltx.NewDecoder(newFrameGuard(bufio.NewReaderSize(&ctxReader{ctx: ctx, r: rc}, 256<<10)))
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("%w: %s: decode header: %w", ErrInvalidFile, name, err)
	}
	hdr := dec.Header()
	switch {
	case hdr.MinTXID != fi.MinTXID || hdr.MaxTXID != fi.MaxTXID:
		return fmt.Errorf("%w: %s: header covers txids %s-%s", ErrInvalidFile, name, hdr.MinTXID, hdr.MaxTXID)
	case hdr.PageSize != f.pageSize:
		return fmt.Errorf("%w: %s has %d-byte pages, the database %d: restore afresh (ltxrestore -follow -f)", ErrPageSize, name, hdr.PageSize, f.pageSize)
	}
	lock := ltx.LockPgno(hdr.PageSize)
	buf := make([]byte, hdr.PageSize)
	var ph ltx.PageHeader
	for n := 0; ; n++ {
		if n%ctxCheckPages == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%w: %s: decode page %d: %w", ErrInvalidFile, name, n+1, err)
		}
		if ph.Pgno == lock || ph.Pgno > hdr.Commit {
			return fmt.Errorf("%w: %s: page %d (lock page %d, commit %d)", ErrInvalidFile, name, ph.Pgno, lock, hdr.Commit)
		}
		if ph.Pgno > f.size+1 {
			b.extend(ph.Pgno - 1)
		}
		if err := b.tx.WritePage(ph.Pgno, buf); err != nil {
			return fmt.Errorf("write page %d: %w", ph.Pgno, err)
		}
		delete(b.zeroed, ph.Pgno)
		b.set(ph.Pgno, pageSum(b.h, ph.Pgno, buf))
		f.size = max(f.size, ph.Pgno)
		b.sinkSize = max(b.sinkSize, ph.Pgno)
		b.pages++
	}
	if err := dec.Close(); errors.Is(err, ltx.ErrChecksumMismatch) {
		return fmt.Errorf("%w: %s: file checksum: %w", ErrChecksumMismatch, name, err)
	} else if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidFile, name, err)
	}
	// The database's size after the file.
	if hdr.Commit > f.size {
		b.extend(hdr.Commit)
	}
	for q := hdr.Commit + 1; q <= f.size; q++ {
		b.set(q, 0)
		delete(b.zeroed, q)
	}
	f.size = hdr.Commit
	if hdr.NoChecksum() {
		return nil
	}
	if got, want := ltx.ChecksumFlag|f.total, dec.Trailer().PostApplyChecksum; got != want {
		return fmt.Errorf("%w: after %s the database's checksum is %s, the file's post-apply checksum %s: the database is not the source's state before it",
			ErrChecksumMismatch, name, got, want)
	}
	return nil
}

// finish writes the zeroed pages and cuts the sink to the database's size.
func (b *batch) finish() error {
	for q := range b.zeroed {
		if q <= b.f.size {
			if err := b.tx.WritePage(q, b.f.zero); err != nil {
				return fmt.Errorf("write page %d: %w", q, err)
			}
		}
	}
	if b.sinkSize > b.f.size {
		if err := b.tx.Truncate(b.f.size); err != nil {
			return fmt.Errorf("truncate to %d pages: %w", b.f.size, err)
		}
	}
	return nil
}
