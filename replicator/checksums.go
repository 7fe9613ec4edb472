package replicator

import (
	"github.com/superfly/ltx"
)

// PageReader reads page pgno of the database state being captured into buf
// (len(buf) == page size).
type PageReader func(pgno uint32, buf []byte) error

// pageChecksums is the per-page checksum table of the replicated state.
type pageChecksums struct {
	pageSize uint32
	commit   uint32
	crcs     []ltx.Checksum // index pgno-1; zero for the lock page
	sum      ltx.Checksum   // XOR of crcs, without the flag
}

// Checksum returns the rolling database checksum.
func (c *pageChecksums) Checksum() ltx.Checksum { return ltx.ChecksumFlag | c.sum }

// set records the checksum of page pgno.
func (c *pageChecksums) set(pgno uint32, crc ltx.Checksum) {
	for uint32(len(c.crcs)) < pgno {
		c.crcs = append(c.crcs, 0)
	}
	c.sum ^= c.crcs[pgno-1] ^ crc
	c.crcs[pgno-1] = crc
}

// truncate drops pages past commit from the checksum.
func (c *pageChecksums) truncate(commit uint32) {
	for pgno := commit + 1; pgno <= uint32(len(c.crcs)); pgno++ {
		c.sum ^= c.crcs[pgno-1]
	}
	if uint32(len(c.crcs)) > commit {
		c.crcs = c.crcs[:commit]
	}
	c.commit = commit
}

// clone returns a copy of the table.
func (c *pageChecksums) clone() *pageChecksums {
	n := *c
	n.crcs = append([]ltx.Checksum(nil), c.crcs...)
	return &n
}

// get returns the checksum of page pgno, zero past the end.
func (c *pageChecksums) get(pgno uint32) ltx.Checksum {
	if pgno > uint32(len(c.crcs)) {
		return 0
	}
	return c.crcs[pgno-1]
}

// delta accumulates page changes against a table without touching it, so a
// failed write leaves the table as it was.
type delta struct {
	base    *pageChecksums
	commit  uint32
	sum     ltx.Checksum
	changes map[uint32]ltx.Checksum
}

func newDelta(base *pageChecksums, commit uint32) *delta {
	d := &delta{base: base, commit: commit, sum: base.sum, changes: make(map[uint32]ltx.Checksum)}
	for pgno := commit + 1; pgno <= uint32(len(base.crcs)); pgno++ {
		d.sum ^= base.crcs[pgno-1]
	}
	return d
}

// set records the new checksum of page pgno (pgno <= commit, each once).
func (d *delta) set(pgno uint32, crc ltx.Checksum) {
	d.sum ^= d.base.get(pgno) ^ crc
	d.changes[pgno] = crc
}

// Checksum returns the rolling checksum after the changes.
func (d *delta) Checksum() ltx.Checksum { return ltx.ChecksumFlag | d.sum }

// apply writes the changes into the base table.
func (d *delta) apply() {
	d.base.truncate(d.commit)
	for pgno, crc := range d.changes {
		d.base.set(pgno, crc)
	}
}
