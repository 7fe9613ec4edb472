package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/fsutil"
	"github.com/litestream-vfs/litestream_vfs/replica"
)

// ctxCheckPages is how many pages are applied between context checks.
const ctxCheckPages = 256

// applier builds the database from the files of a plan, applied newest
// first: a page is written from the newest file that holds it and is still
// part of the database after every later file (SQLite may shrink and grow
// the database again), so every page is written once, and pages no file
// supplies read as zeros. The checksum of every written page is kept, so
// the database checksum needs no second pass over the result. Each file's
// pre-apply checksum is checked against the post-apply checksum of the
// file before it in the chain as soon as both are known.
type applier struct {
	f        *os.File
	pageSize uint32 // bytes; from the newest file
	commit   uint32 // pages; the database size after the newest file
	bound    uint32 // least Commit of the files applied so far
	written  []uint64
	sums     bool         // the newest file has a post-apply checksum to check the result against
	chksum   ltx.Checksum // XOR of the checksums (without the flag) of pages written, as far as not summed by w
	bytes    int64        // LTX bytes read
	w        *pageWriter  // nil until the newest file's header is read

	newest     string       // replica path of the newest file
	newestPost ltx.Checksum // its post-apply checksum
	next       fileEnds     // the file applied last (the one after this one in the chain)
	applied    int
	snapshot   bool  // the file applied last is a snapshot
	unverified bool  // some pre-apply checksum could not be checked
	chainErr   error // the oldest break in the checksum chain found so far
}

// fileEnds is what an applied file leaves for checking its neighbour.
type fileEnds struct {
	name       string
	minTXID    ltx.TXID
	pre        ltx.Checksum
	noChecksum bool
}

func newApplier(f *os.File) *applier {
	return &applier{f: f, bound: ^uint32(0)}
}

// applyFile applies the LTX file at path, the download of info; see apply.
func (a *applier) applyFile(ctx context.Context, path string, info *ltx.FileInfo, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open download of %s: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	return a.apply(ctx, f, info, name)
}

// applyStream applies info read straight from client; see apply.
func (a *applier) applyStream(ctx context.Context, client replica.Client, info *ltx.FileInfo, name string) (err error) {
	rc, err := client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer func() { _ = rc.Close() }()
	r := &errReader{r: &ctxReader{ctx: ctx, r: rc}}
	err = a.apply(ctx, r, info, name)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case r.err != nil:
		// The replica failed mid-file, not the file's content.
		return fmt.Errorf("read %s: %w", name, r.err)
	}
	return err
}

// errReader remembers the first error of r other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// apply streams the file info, named name, from r: files come newest
// first, the last one a snapshot. The file checksum is verified (by the
// decoder) once the file has been read.
func (a *applier) apply(ctx context.Context, r io.Reader, info *ltx.FileInfo, name string) error {
	cr := &countingReader{r: r}
	dec := ltx.NewDecoder(newFrameGuard(bufio.NewReaderSize(cr, 256<<10)))
	dec.SetRetainPageIndex(false)
	defer func() { a.bytes += cr.n }()

	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("%w: %s: decode header: %w", ErrInvalidFile, name, err)
	}
	hdr := dec.Header()
	if err := a.checkHeader(hdr, info, name); err != nil {
		return err
	}
	a.bound = min(a.bound, hdr.Commit)

	lockPgno := ltx.LockPgno(hdr.PageSize)
	buf := make([]byte, hdr.PageSize)
	h := ltx.NewHasher()
	// A snapshot with checksums has its pages' checksums computed and
	// checked against its post-apply checksum by the decoder; the pages
	// written then sum to that minus the pages skipped, which are few, so
	// only those are summed here.
	fromTrailer := hdr.IsSnapshot() && !hdr.NoChecksum()
	var skipped ltx.Checksum
	var ph ltx.PageHeader
	var n uint32          // pages decoded
	nextPgno := uint32(1) // snapshots: the page expected next
	for {
		if n%ctxCheckPages == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%w: %s: decode page %d: %w", ErrInvalidFile, name, n+1, err)
		}
		switch {
		case ph.Pgno > hdr.Commit:
			return fmt.Errorf("%w: %s: page %d past commit %d", ErrInvalidFile, name, ph.Pgno, hdr.Commit)
		case ph.Pgno == lockPgno:
			return fmt.Errorf("%w: %s: holds the lock page %d", ErrInvalidFile, name, ph.Pgno)
		case hdr.IsSnapshot() && ph.Pgno != nextPgno:
			return fmt.Errorf("%w: %s: snapshot has page %d where page %d belongs", ErrInvalidFile, name, ph.Pgno, nextPgno)
		}
		if nextPgno = ph.Pgno + 1; nextPgno == lockPgno {
			nextPgno++
		}
		n++
		if ph.Pgno > a.bound || a.isWritten(ph.Pgno) {
			// A later file has it, or it was cut off after this file.
			if fromTrailer {
				skipped ^= pageSum(h, ph.Pgno, buf)
			}
			continue
		}
		if err := a.w.add(ph.Pgno, buf, !fromTrailer, hdr.IsSnapshot()); err != nil {
			return fmt.Errorf("write restored database: %w", err)
		}
		a.markWritten(ph.Pgno)
	}
	if hdr.IsSnapshot() {
		want := hdr.Commit
		if hdr.Commit >= lockPgno {
			want--
		}
		if n != want {
			return fmt.Errorf("%w: %s: snapshot has %d pages, commit %d needs %d", ErrInvalidFile, name, n, hdr.Commit, want)
		}
	}

	if err := dec.Close(); errors.Is(err, ltx.ErrChecksumMismatch) {
		return fmt.Errorf("%w: %s: file checksum: %w", ErrChecksumMismatch, name, err)
	} else if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidFile, name, err)
	}
	post := dec.Trailer().PostApplyChecksum
	if fromTrailer {
		a.chksum ^= post&^ltx.ChecksumFlag ^ skipped
	}
	if a.applied == 0 {
		a.newest, a.newestPost = name, post
	} else if err := a.checkChain(name, hdr, post); err != nil {
		return err
	}
	a.next = fileEnds{name: name, minTXID: hdr.MinTXID, pre: hdr.PreApplyChecksum, noChecksum: hdr.NoChecksum()}
	a.snapshot = hdr.IsSnapshot()
	a.applied++
	return nil
}

// checkHeader checks hdr against the file's name and the newer files.
func (a *applier) checkHeader(hdr ltx.Header, info *ltx.FileInfo, name string) error {
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID {
		return fmt.Errorf("%w: %s: header covers txids %s-%s", ErrInvalidFile, name, hdr.MinTXID, hdr.MaxTXID)
	}
	if a.applied == 0 {
		a.pageSize, a.commit = hdr.PageSize, hdr.Commit
		a.written = make([]uint64, (uint64(hdr.Commit)+64)/64)
		a.sums = !hdr.NoChecksum()
		// Newer files come first and write pages out of order: reserve
		// the whole database so its blocks stay contiguous.
		fsutil.Preallocate(a.f, int64(hdr.Commit)*int64(hdr.PageSize))
		a.w = newPageWriter(a.f, hdr.PageSize)
		return nil
	}
	if a.snapshot {
		return fmt.Errorf("%w: %s: files older than snapshot %s in the chain", ErrInvalidFile, name, a.next.name)
	}
	if hdr.PageSize != a.pageSize {
		// Named as the chain runs: the newer file does not continue this one.
		return fmt.Errorf("%w: %s: txid %s: page size %d, previous files (last %s) have %d; is it from another database?",
			ErrInvalidFile, a.next.name, a.next.minTXID, a.pageSize, name, hdr.PageSize)
	}
	return nil
}

// checkChain checks the newer neighbour's pre-apply checksum against the
// post-apply checksum post of the file just applied (name, hdr). A break
// does not stop the restore at once: the files go on being read, so that
// finish names the oldest break, the file where the chain first goes
// wrong, as a restore in chain order would.
func (a *applier) checkChain(name string, hdr ltx.Header, post ltx.Checksum) error {
	if hdr.NoChecksum() || a.next.noChecksum {
		a.unverified = true
		return nil
	}
	if a.next.pre != post {
		a.chainErr = fmt.Errorf("%w: %s: txid %s: pre-apply checksum %s does not match post-apply checksum %s of %s (txid %s); is it from another database?",
			ErrChecksumMismatch, a.next.name, a.next.minTXID, a.next.pre, post, name, a.next.minTXID-1)
	}
	return nil
}

// finish completes the database once every file is applied: the oldest
// must be a snapshot; the file is cut to the newest file's size (pages no
// file supplied, the lock page among them, read as zeros); and it returns
// the database checksum, with verified false if the newest file carries no
// post-apply checksum to compare it with.
func (a *applier) finish(ctx context.Context) (_ ltx.Checksum, verified bool, err error) {
	if a.chainErr != nil {
		return 0, false, a.chainErr
	}
	if a.applied == 0 || !a.snapshot {
		return 0, false, fmt.Errorf("%w: %s: first file is not a snapshot", ErrInvalidFile, a.next.name)
	}
	written, err := a.w.close()
	if err != nil {
		return 0, false, fmt.Errorf("write restored database: %w", err)
	}
	if err := a.f.Truncate(int64(a.commit) * int64(a.pageSize)); err != nil {
		return 0, false, fmt.Errorf("resize restored database: %w", err)
	}
	lockPgno := ltx.LockPgno(a.pageSize)
	zero := make([]byte, a.pageSize)
	h := ltx.NewHasher()
	chksum := a.chksum ^ written
	for pgno := uint32(1); pgno <= a.commit; pgno++ {
		if pgno%(64*ctxCheckPages) == 0 {
			if err := ctx.Err(); err != nil {
				return 0, false, err
			}
		}
		if pgno != lockPgno && !a.isWritten(pgno) {
			chksum ^= pageSum(h, pgno, zero)
		}
	}
	return ltx.ChecksumFlag | chksum, a.sums, nil
}

// pageSum returns the checksum of one page without ltx.ChecksumFlag, so
// that sums XOR together; the database checksum is ChecksumFlag | the XOR.
func pageSum(h hash.Hash64, pgno uint32, data []byte) ltx.Checksum {
	return ltx.ChecksumPageWithHasher(h, pgno, data) &^ ltx.ChecksumFlag
}

// close ends the applier's background work; safe to call more than once.
func (a *applier) close() {
	if a.w != nil {
		_, _ = a.w.close()
	}
}

func (a *applier) isWritten(pgno uint32) bool {
	return a.written[pgno/64]&(1<<(pgno%64)) != 0
}

func (a *applier) markWritten(pgno uint32) {
	a.written[pgno/64] |= 1 << (pgno % 64)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}
