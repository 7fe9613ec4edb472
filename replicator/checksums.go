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

// clone returns a copy that can be changed without touching c.
func (c *pageChecksums) clone() *pageChecksums {
	out := *c
	out.crcs = append([]ltx.Checksum(nil), c.crcs...)
	return &out
}
