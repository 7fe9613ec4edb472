package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/superfly/ltx"
)

// ctxCheckPages is how many pages are applied between context checks.
const ctxCheckPages = 256

// applier applies LTX files, in chain order, to a database file.
type applier struct {
	f        *os.File
	pageSize uint32 // bytes; set by the first file
	commit   uint32 // pages; database size after the last applied file
	buf      []byte // one page
	bytes    int64  // LTX bytes read

	prevName       string       // replica path of the last applied file
	prevPost       ltx.Checksum // its post-apply checksum
	prevNoChecksum bool         // it carried HeaderFlagNoChecksum
	unverified     bool         // some pre-apply checksum could not be checked
}

func newApplier(f *os.File) *applier {
	return &applier{f: f}
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

// apply streams the file info, named name, from r into the database: each
// page is written at (pgno-1)*PageSize, then the file is truncated to
// Commit pages. The first file must be a snapshot. The file checksum is
// verified (by the decoder) before the database is resized.
func (a *applier) apply(ctx context.Context, r io.Reader, info *ltx.FileInfo, name string) error {
	cr := &countingReader{r: r}
	dec := ltx.NewDecoder(newFrameGuard(bufio.NewReaderSize(cr, 64<<10)))
	dec.SetRetainPageIndex(false)
	defer func() { a.bytes += cr.n }()

	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("%w: %s: decode header: %w", ErrInvalidFile, name, err)
	}
	hdr := dec.Header()
	if err := a.checkHeader(hdr, info, name); err != nil {
		return err
	}

	lockPgno := ltx.LockPgno(hdr.PageSize)
	var ph ltx.PageHeader
	var n uint32          // pages decoded
	nextPgno := uint32(1) // snapshots: the page expected next
	for {
		if n%ctxCheckPages == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := dec.DecodePage(&ph, a.buf); err == io.EOF {
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
		if _, err := a.f.WriteAt(a.buf, int64(ph.Pgno-1)*int64(a.pageSize)); err != nil {
			return fmt.Errorf("write page %d of %s: %w", ph.Pgno, name, err)
		}
		n++
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

	if err := a.resize(hdr.Commit); err != nil {
		return fmt.Errorf("resize to %s: %w", name, err)
	}
	a.prevName = name
	a.prevPost = dec.Trailer().PostApplyChecksum
	a.prevNoChecksum = hdr.NoChecksum()
	return nil
}

// checkHeader checks hdr against the file's name and the chain so far.
func (a *applier) checkHeader(hdr ltx.Header, info *ltx.FileInfo, name string) error {
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID {
		return fmt.Errorf("%w: %s: header covers txids %s-%s", ErrInvalidFile, name, hdr.MinTXID, hdr.MaxTXID)
	}
	if a.buf == nil {
		if !hdr.IsSnapshot() {
			return fmt.Errorf("%w: %s: first file is not a snapshot", ErrInvalidFile, name)
		}
		a.pageSize = hdr.PageSize
		a.buf = make([]byte, hdr.PageSize)
		return nil
	}
	if hdr.PageSize != a.pageSize {
		return fmt.Errorf("%w: %s: txid %s: page size %d, previous files (last %s) have %d; is it from another database?",
			ErrInvalidFile, name, hdr.MinTXID, hdr.PageSize, a.prevName, a.pageSize)
	}
	if hdr.NoChecksum() || a.prevNoChecksum {
		a.unverified = true
		return nil
	}
	if hdr.PreApplyChecksum != a.prevPost {
		return fmt.Errorf("%w: %s: txid %s: pre-apply checksum %s does not match post-apply checksum %s of %s (txid %s); is it from another database?",
			ErrChecksumMismatch, name, hdr.MinTXID, hdr.PreApplyChecksum, a.prevPost, a.prevName, hdr.MinTXID-1)
	}
	return nil
}

// resize truncates or extends the database to commit pages. If the
// database reaches the lock page, that page is written as zeros: LTX files
// never carry it and SQLite never stores data in it.
func (a *applier) resize(commit uint32) error {
	if err := a.f.Truncate(int64(commit) * int64(a.pageSize)); err != nil {
		return err
	}
	a.commit = commit
	if lockPgno := ltx.LockPgno(a.pageSize); commit >= lockPgno {
		clear(a.buf)
		if _, err := a.f.WriteAt(a.buf, int64(lockPgno-1)*int64(a.pageSize)); err != nil {
			return fmt.Errorf("zero lock page: %w", err)
		}
	}
	return nil
}

// checksum computes the rolling checksum of the database file, streaming,
// and checks that its size is commit pages.
func (a *applier) checksum(ctx context.Context) (ltx.Checksum, error) {
	fi, err := a.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat restored database: %w", err)
	}
	if got, want := fi.Size(), int64(a.commit)*int64(a.pageSize); got != want {
		return 0, fmt.Errorf("restored database is %d bytes, want %d", got, want)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(a.f, 0, fi.Size()), 1<<20)
	lockPgno := ltx.LockPgno(a.pageSize)
	h := ltx.NewHasher()
	chksum := ltx.ChecksumFlag
	for pgno := uint32(1); pgno <= a.commit; pgno++ {
		if pgno%ctxCheckPages == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if _, err := io.ReadFull(br, a.buf); err != nil {
			return 0, fmt.Errorf("read page %d of restored database: %w", pgno, err)
		}
		if pgno != lockPgno {
			chksum = ltx.ChecksumFlag | (chksum ^ ltx.ChecksumPageWithHasher(h, pgno, a.buf))
		}
	}
	return chksum, nil
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
