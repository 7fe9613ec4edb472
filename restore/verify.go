package restore

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// Report is the outcome of VerifyReplica.
type Report struct {
	// Files is the number of LTX files decoded.
	Files int
	// Bytes is the number of LTX bytes read.
	Bytes int64
	// LatestTXID is the latest TXID in the replica.
	LatestTXID ltx.TXID
	// Chain lists the replica paths of the files a restore of LatestTXID
	// applies, in order; empty if Plan fails.
	Chain []string
	// Problems are the errors that make a restore of LatestTXID impossible
	// or unsafe, or that affect any object: a bad (corrupt, truncated,
	// misnamed) file, a checksum discontinuity along Chain, a plan
	// failure. Each wraps ErrInvalidFile, ErrChecksumMismatch, ErrTXIDGap,
	// ErrNoSnapshot or ErrTargetNotFound and names the files involved.
	Problems []error
	// Gaps describe every break in TXID contiguity within a level (other
	// than the snapshot level). A gap that the chain to LatestTXID does not
	// need (a snapshot was written after it) is not a problem.
	Gaps []string
	// Unreachable describes the file ends after the oldest snapshot that
	// no chain from a snapshot reaches (see Unreachable): points in time
	// the replica lists but cannot restore. Not a problem for a restore of
	// LatestTXID, but a replicator must never leave one.
	Unreachable []string
	// NoChecksum lists the files along Chain whose checksum continuity
	// was not checked because they, or the file before them, carry
	// ltx.HeaderFlagNoChecksum.
	NoChecksum []string
}

// OK reports whether a full restore of LatestTXID is possible and every
// file decoded.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// decoded is what fully decoding a file found.
type decoded struct {
	hdr     ltx.Header
	trailer ltx.Trailer
	err     error
}

// VerifyReplica decodes every LTX file in the replica in full (file
// checksums, page frames, header against name), checks TXID contiguity
// within each level, plans a restore of the latest TXID and checks the
// pre-apply checksum of each file along that chain against the post-apply
// checksum of the file before it. It does not write a database.
//
// Problems found are collected in the Report; the error is non-nil only
// when the replica cannot be listed (or is empty: ErrEmptyReplica) or ctx
// is done.
func VerifyReplica(ctx context.Context, client replica.Client) (*Report, error) {
	files, err := ListFiles(ctx, client)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", client, ErrEmptyReplica)
	}
	r := &Report{}
	results := make(map[*ltx.FileInfo]*decoded, len(files))
	for _, f := range files {
		r.LatestTXID = max(r.LatestTXID, f.MaxTXID)
		d, n := decodeFile(ctx, client, f)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r.Files++
		r.Bytes += n
		results[f] = d
		if d.err != nil {
			r.Problems = append(r.Problems, d.err)
		}
	}
	r.Gaps = levelGaps(files)
	r.Unreachable = Unreachable(files)

	chain, err := plan(client.String(), files, 0)
	if err != nil {
		r.Problems = append(r.Problems, err)
		return r, nil
	}
	ok := true
	for i, f := range chain {
		r.Chain = append(r.Chain, fileName(f))
		ok = ok && results[f].err == nil
		if i == 0 {
			continue
		}
		prev, cur := results[chain[i-1]], results[f]
		switch {
		case prev.err != nil || cur.err != nil:
			// Already a problem; its checksums mean nothing.
		case prev.hdr.NoChecksum() || cur.hdr.NoChecksum():
			r.NoChecksum = append(r.NoChecksum, fileName(f))
		case cur.hdr.PreApplyChecksum != prev.trailer.PostApplyChecksum:
			r.Problems = append(r.Problems, fmt.Errorf("%w: %s: pre-apply checksum %s does not match post-apply checksum %s of %s (txid %s)",
				ErrChecksumMismatch, fileName(f), cur.hdr.PreApplyChecksum, prev.trailer.PostApplyChecksum, fileName(chain[i-1]), f.MinTXID-1))
		}
	}
	if ok && len(r.NoChecksum) == 0 && len(r.Problems) == 0 {
		if err := checkStates(ctx, client, chain); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.Problems = append(r.Problems, err)
		}
	}
	return r, nil
}

// checkStates decodes the chain's files again, in order, and checks the
// database each leads to against its post-apply checksum, as a restore
// checks the last one: a replica whose files chain but whose pages do not
// add up to the states they claim (a writer the replicator never saw
// changed pages it did not rewrite) fails the restore, and verify said ok.
// It keeps one checksum per page, not the pages.
func checkStates(ctx context.Context, client replica.Client, chain []*ltx.FileInfo) error {
	var sums []ltx.Checksum // per page, without ltx.ChecksumFlag
	var written []bool
	var total ltx.Checksum // XOR of the written pages' sums up to the size
	var nWritten uint32    // written pages up to the size
	h := ltx.NewHasher()
	for _, f := range chain {
		name := fileName(f)
		rc, err := client.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID)
		if err != nil {
			return fmt.Errorf("%w: %s: open: %w", ErrInvalidFile, name, err)
		}
		dec := ltx.NewDecoder(newFrameGuard(bufio.NewReaderSize(rc, 64<<10)))
		err = dec.DecodeHeader()
		hdr := dec.Header()
		lock := ltx.LockPgno(hdr.PageSize)
		data := make([]byte, hdr.PageSize)
		for err == nil {
			var ph ltx.PageHeader
			if err = dec.DecodePage(&ph, data); err != nil || ph.Pgno == lock {
				continue
			}
			for uint32(len(sums)) <= ph.Pgno {
				sums, written = append(sums, 0), append(written, false)
			}
			sum := pageSum(h, ph.Pgno, data)
			total ^= sums[ph.Pgno] ^ sum
			sums[ph.Pgno] = sum
			if !written[ph.Pgno] {
				written[ph.Pgno] = true
				nWritten++
			}
		}
		if errors.Is(err, io.EOF) {
			err = dec.Close()
		}
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidFile, name, err)
		}
		// Pages past the new size go; pages below it never written are
		// zeros (as a restore writes them).
		for pgno := hdr.Commit + 1; pgno < uint32(len(sums)); pgno++ {
			if written[pgno] {
				total ^= sums[pgno]
				nWritten--
			}
		}
		if n := min(uint32(len(sums)), hdr.Commit+1); n < uint32(len(sums)) {
			sums, written = sums[:n], written[:n]
		}
		got := total
		pages := hdr.Commit
		if lock <= hdr.Commit {
			pages--
		}
		if nWritten < pages {
			zero := make([]byte, hdr.PageSize)
			for pgno := uint32(1); pgno <= hdr.Commit; pgno++ {
				if pgno != lock && (pgno >= uint32(len(written)) || !written[pgno]) {
					got ^= pageSum(h, pgno, zero)
				}
			}
		}
		if got = ltx.ChecksumFlag | got; got != dec.Trailer().PostApplyChecksum {
			return fmt.Errorf("%w: %s: the database it leads to has checksum %s, its post-apply checksum says %s",
				ErrChecksumMismatch, name, got, dec.Trailer().PostApplyChecksum)
		}
	}
	return nil
}

// decodeFile reads f in full and returns what it found and the bytes read.
func decodeFile(ctx context.Context, client replica.Client, f *ltx.FileInfo) (*decoded, int64) {
	name := fileName(f)
	rc, err := client.OpenLTXFile(ctx, f.Level, f.MinTXID, f.MaxTXID)
	if err != nil {
		return &decoded{err: fmt.Errorf("%w: %s: open: %w", ErrInvalidFile, name, err)}, 0
	}
	defer func() { _ = rc.Close() }()
	cr := &countingReader{r: rc}
	dec := ltx.NewDecoder(newFrameGuard(bufio.NewReaderSize(cr, 64<<10)))
	dec.SetRetainPageIndex(false)
	if err := dec.Verify(); errors.Is(err, ltx.ErrChecksumMismatch) {
		return &decoded{err: fmt.Errorf("%w: %s: %w", ErrChecksumMismatch, name, err)}, cr.n
	} else if err != nil {
		return &decoded{err: fmt.Errorf("%w: %s: %w", ErrInvalidFile, name, err)}, cr.n
	}
	d := &decoded{hdr: dec.Header(), trailer: dec.Trailer()}
	if d.hdr.MinTXID != f.MinTXID || d.hdr.MaxTXID != f.MaxTXID {
		d.err = fmt.Errorf("%w: %s: header covers txids %s-%s", ErrInvalidFile, name, d.hdr.MinTXID, d.hdr.MaxTXID)
	}
	return d, cr.n
}

// levelGaps describes every break in TXID contiguity within each level
// but the snapshot level: a file starting past the highest TXID covered
// by the files before it at that level.
func levelGaps(files []*ltx.FileInfo) []string {
	var gaps []string
	byLevel := make(map[int][]*ltx.FileInfo)
	for _, f := range files {
		if f.Level != replica.SnapshotLevel {
			byLevel[f.Level] = append(byLevel[f.Level], f)
		}
	}
	for level := 0; level <= replica.MaxLevel; level++ {
		a := byLevel[level]
		slices.SortFunc(a, func(x, y *ltx.FileInfo) int {
			return cmp.Or(cmp.Compare(x.MinTXID, y.MinTXID), cmp.Compare(x.MaxTXID, y.MaxTXID))
		})
		var reach *ltx.FileInfo // file reaching the highest TXID so far
		for _, f := range a {
			if reach != nil && f.MinTXID > reach.MaxTXID+1 {
				gaps = append(gaps, fmt.Sprintf("level %d: txids %s-%s (%d-%d) missing between %s and %s",
					level, reach.MaxTXID+1, f.MinTXID-1, reach.MaxTXID+1, f.MinTXID-1, fileName(reach), fileName(f)))
			}
			if reach == nil || f.MaxTXID > reach.MaxTXID {
				reach = f
			}
		}
	}
	return gaps
}
