package replicatest

import (
	"bytes"
	"context"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// Timestamp is the LTX header timestamp of every fixture file (milliseconds
// since the Unix epoch), fixed so fixtures are reproducible byte for byte.
const Timestamp = 1700000000000

// DB is an in-memory database image that produces LTX fixtures: Tx applies
// a transaction and returns its LTX file, Snapshot returns a full snapshot
// of the current state. Page contents are arbitrary bytes, not SQLite
// b-tree pages. Not safe for concurrent use.
type DB struct {
	// PageSize is the page size in bytes.
	PageSize uint32
	// Commit is the database size in pages.
	Commit uint32
	// TXID is the last applied transaction.
	TXID ltx.TXID
	// NoChecksum makes new files carry HeaderFlagNoChecksum and zero
	// pre- and post-apply checksums, as Litestream 0.5 writes them.
	NoChecksum bool

	pages map[uint32][]byte // missing pages below Commit read as zeros
	sum   ltx.Checksum      // XOR of ltx.ChecksumPage over pages 1..Commit
}

// NewDB returns an empty database image (Commit 0, TXID 0).
func NewDB(pageSize uint32) *DB {
	return &DB{PageSize: pageSize, pages: make(map[uint32][]byte)}
}

// Clone returns an independent copy of db, to branch a history.
func (db *DB) Clone() *DB {
	c := *db
	c.pages = maps.Clone(db.pages)
	return &c
}

// Page returns deterministic content for pgno as written by txid. The
// generator is not linear over GF(2), so distinct pages do not cancel out
// in the XOR-based rolling checksum.
func Page(pageSize, pgno uint32, txid ltx.TXID) []byte {
	r := rand.New(rand.NewPCG(uint64(pgno), uint64(txid)))
	b := make([]byte, pageSize)
	for i := range b {
		if i%7 != 0 { // every 7th byte zero: compressible but not trivial
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

// Pages returns content from Page for each pgno, as written by txid.
func (db *DB) Pages(txid ltx.TXID, pgnos ...uint32) map[uint32][]byte {
	m := make(map[uint32][]byte, len(pgnos))
	for _, pgno := range pgnos {
		m[pgno] = Page(db.PageSize, pgno, txid)
	}
	return m
}

// page returns the current content of pgno (zeros if never written).
func (db *DB) page(pgno uint32) []byte {
	if b, ok := db.pages[pgno]; ok {
		return b
	}
	return make([]byte, db.PageSize)
}

// Checksum returns the rolling checksum of the current image: ChecksumFlag
// | XOR of ltx.ChecksumPage over pages 1..Commit, lock page excluded. It is
// maintained incrementally, so large sparse images stay cheap.
func (db *DB) Checksum() ltx.Checksum {
	return ltx.ChecksumFlag | db.sum
}

// pageSum returns pgno's contribution to the checksum (0 for the lock page).
func (db *DB) pageSum(pgno uint32) ltx.Checksum {
	if pgno == ltx.LockPgno(db.PageSize) {
		return 0
	}
	return ltx.ChecksumPage(pgno, db.page(pgno))
}

// Image returns the database file: Commit pages, the lock page zeroed.
func (db *DB) Image() []byte {
	b := make([]byte, 0, int(db.Commit)*int(db.PageSize))
	for pgno := uint32(1); pgno <= db.Commit; pgno++ {
		b = append(b, db.page(pgno)...)
	}
	return b
}

// Tx applies a transaction that sets the database size to commit pages and
// writes pages, and returns its LTX file (MinTXID = MaxTXID = TXID+1, the
// pre-apply checksum of the previous state). Pages past commit are dropped
// (a shrink). The file of TXID 1 is a snapshot: it holds every page up to
// commit, pages not in pages as zeros.
func (db *DB) Tx(tb testing.TB, commit uint32, pages map[uint32][]byte) []byte {
	tb.Helper()
	pre := db.Checksum()
	if db.TXID == 0 {
		pre = 0
	}
	db.TXID++
	for pgno := commit + 1; pgno <= db.Commit; pgno++ { // shrink
		db.sum ^= db.pageSum(pgno)
		delete(db.pages, pgno)
	}
	for pgno := db.Commit + 1; pgno <= commit; pgno++ { // grow with zeros
		db.sum ^= db.pageSum(pgno)
	}
	db.Commit = commit
	for pgno, b := range pages {
		if pgno > commit {
			tb.Fatalf("fixture tx %d writes page %d past commit %d", db.TXID, pgno, commit)
		}
		if pgno == ltx.LockPgno(db.PageSize) {
			tb.Fatalf("fixture tx %d writes the lock page %d", db.TXID, pgno)
		}
		db.sum ^= db.pageSum(pgno)
		db.pages[pgno] = bytes.Clone(b)
		db.sum ^= db.pageSum(pgno)
	}
	hdr := ltx.Header{
		Version:          ltx.Version,
		PageSize:         db.PageSize,
		Commit:           commit,
		MinTXID:          db.TXID,
		MaxTXID:          db.TXID,
		Timestamp:        Timestamp,
		PreApplyChecksum: pre,
	}
	if hdr.IsSnapshot() {
		return db.Snapshot(tb)
	}
	return db.encode(tb, hdr, slices.Sorted(maps.Keys(pages)))
}

// Snapshot returns a snapshot of the current state: MinTXID 1, MaxTXID
// TXID, every page 1..Commit except the lock page.
func (db *DB) Snapshot(tb testing.TB) []byte {
	tb.Helper()
	hdr := ltx.Header{
		Version:   ltx.Version,
		PageSize:  db.PageSize,
		Commit:    db.Commit,
		MinTXID:   1,
		MaxTXID:   db.TXID,
		Timestamp: Timestamp,
	}
	pgnos := make([]uint32, 0, db.Commit)
	lockPgno := ltx.LockPgno(db.PageSize)
	for pgno := uint32(1); pgno <= db.Commit; pgno++ {
		if pgno != lockPgno {
			pgnos = append(pgnos, pgno)
		}
	}
	return db.encode(tb, hdr, pgnos)
}

// encode writes an LTX file with hdr, the current content of pgnos
// (ascending) and the current checksum as post-apply checksum.
func (db *DB) encode(tb testing.TB, hdr ltx.Header, pgnos []uint32) []byte {
	tb.Helper()
	post := db.Checksum()
	if db.NoChecksum {
		hdr.Flags |= ltx.HeaderFlagNoChecksum
		hdr.PreApplyChecksum = 0
		post = 0
	}
	zero := make([]byte, db.PageSize)
	return encodeLTX(tb, hdr, pgnos, func(pgno uint32) []byte {
		if b, ok := db.pages[pgno]; ok {
			return b
		}
		return zero
	}, post)
}

// EncodeLTX returns an LTX file with hdr, pages in ascending pgno order and
// post as post-apply checksum. The lock page must not be in pages.
func EncodeLTX(tb testing.TB, hdr ltx.Header, pages map[uint32][]byte, post ltx.Checksum) []byte {
	tb.Helper()
	return encodeLTX(tb, hdr, slices.Sorted(maps.Keys(pages)), func(pgno uint32) []byte { return pages[pgno] }, post)
}

// encodeLTX returns an LTX file with hdr, page(pgno) for each of pgnos in
// order and post as post-apply checksum.
func encodeLTX(tb testing.TB, hdr ltx.Header, pgnos []uint32, page func(pgno uint32) []byte, post ltx.Checksum) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		tb.Fatalf("new encoder: %v", err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		tb.Fatalf("encode header %s-%s: %v", hdr.MinTXID, hdr.MaxTXID, err)
	}
	for _, pgno := range pgnos {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page(pgno)); err != nil {
			tb.Fatalf("encode page %d of %s-%s: %v", pgno, hdr.MinTXID, hdr.MaxTXID, err)
		}
	}
	enc.SetPostApplyChecksum(post)
	if err := enc.Close(); err != nil {
		tb.Fatalf("close encoder %s-%s: %v", hdr.MinTXID, hdr.MaxTXID, err)
	}
	return buf.Bytes()
}

// WriteFile stores an LTX file at level under the TXID range in its header.
func WriteFile(tb testing.TB, c replica.Client, level int, data []byte) *ltx.FileInfo {
	tb.Helper()
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data); err != nil {
		tb.Fatalf("read fixture header: %v", err)
	}
	info, err := c.WriteLTXFile(context.Background(), level, hdr.MinTXID, hdr.MaxTXID, bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("write fixture %s: %v", replica.LTXFilePath(level, hdr.MinTXID, hdr.MaxTXID), err)
	}
	return info
}

// Compact merges contiguous LTX files into one with ltx.Compactor, as a
// compaction level or a merged level-0 file would hold.
func Compact(tb testing.TB, files ...[]byte) []byte {
	tb.Helper()
	rdrs := make([]io.Reader, len(files))
	for i, b := range files {
		rdrs[i] = bytes.NewReader(b)
	}
	var buf bytes.Buffer
	c, err := ltx.NewCompactor(&buf, rdrs)
	if err != nil {
		tb.Fatalf("new compactor: %v", err)
	}
	if len(files) > 0 {
		var hdr ltx.Header
		if err := hdr.UnmarshalBinary(files[0]); err != nil {
			tb.Fatalf("read fixture header: %v", err)
		}
		c.HeaderFlags = hdr.Flags
	}
	if err := c.Compact(context.Background()); err != nil {
		tb.Fatalf("compact: %v", err)
	}
	return buf.Bytes()
}
