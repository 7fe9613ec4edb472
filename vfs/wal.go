package vfs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// WAL format constants (sqlite.org/fileformat2.html#walformat).
const (
	WALHeaderSize      = 32
	WALFrameHeaderSize = 24
	walMagicLE         = 0x377f0682
	walMagicBE         = 0x377f0683
	walVersion         = 3007000
)

var (
	// ErrInvalidWALHeader is returned for a WAL header with a bad magic,
	// version, page size or checksum.
	ErrInvalidWALHeader = errors.New("invalid wal header")
)

// WALHeader is the 32-byte header at the start of a WAL file.
type WALHeader struct {
	Magic     uint32
	Version   uint32
	PageSize  uint32 // bytes
	CkptSeq   uint32
	Salt1     uint32
	Salt2     uint32
	Checksum1 uint32
	Checksum2 uint32
}

// ParseWALHeader decodes and validates a WAL header, including its checksum.
// Returns an error wrapping ErrInvalidWALHeader for anything SQLite would
// not accept.
func ParseWALHeader(b []byte) (WALHeader, error) {
	if len(b) < WALHeaderSize {
		return WALHeader{}, fmt.Errorf("%w: short header (%d bytes)", ErrInvalidWALHeader, len(b))
	}
	h := WALHeader{
		Magic:     binary.BigEndian.Uint32(b[0:]),
		Version:   binary.BigEndian.Uint32(b[4:]),
		PageSize:  binary.BigEndian.Uint32(b[8:]),
		CkptSeq:   binary.BigEndian.Uint32(b[12:]),
		Salt1:     binary.BigEndian.Uint32(b[16:]),
		Salt2:     binary.BigEndian.Uint32(b[20:]),
		Checksum1: binary.BigEndian.Uint32(b[24:]),
		Checksum2: binary.BigEndian.Uint32(b[28:]),
	}
	if h.Magic != walMagicLE && h.Magic != walMagicBE {
		return h, fmt.Errorf("%w: magic 0x%08x", ErrInvalidWALHeader, h.Magic)
	}
	if h.Version != walVersion {
		return h, fmt.Errorf("%w: version %d", ErrInvalidWALHeader, h.Version)
	}
	if h.PageSize == 1 {
		h.PageSize = 65536 // the format stores 65536 as 1
	}
	if h.PageSize < 512 || h.PageSize > 65536 || h.PageSize&(h.PageSize-1) != 0 {
		return h, fmt.Errorf("%w: page size %d", ErrInvalidWALHeader, h.PageSize)
	}
	s1, s2 := WALChecksum(h.BigEndian(), 0, 0, b[:24])
	if s1 != h.Checksum1 || s2 != h.Checksum2 {
		return h, fmt.Errorf("%w: checksum mismatch", ErrInvalidWALHeader)
	}
	return h, nil
}

// BigEndian reports whether the WAL's checksums use big-endian words.
func (h WALHeader) BigEndian() bool { return h.Magic == walMagicBE }

// FrameSize returns the size of one frame, header included, in bytes.
func (h WALHeader) FrameSize() int64 { return WALFrameHeaderSize + int64(h.PageSize) }

// WALFrameHeader is the 24-byte header of a WAL frame.
type WALFrameHeader struct {
	Pgno      uint32
	Commit    uint32 // db size in pages after commit; non-zero only on a commit frame
	Salt1     uint32
	Salt2     uint32
	Checksum1 uint32
	Checksum2 uint32
}

// ParseWALFrameHeader decodes a frame header. It does not validate it.
func ParseWALFrameHeader(b []byte) WALFrameHeader {
	return WALFrameHeader{
		Pgno:      binary.BigEndian.Uint32(b[0:]),
		Commit:    binary.BigEndian.Uint32(b[4:]),
		Salt1:     binary.BigEndian.Uint32(b[8:]),
		Salt2:     binary.BigEndian.Uint32(b[12:]),
		Checksum1: binary.BigEndian.Uint32(b[16:]),
		Checksum2: binary.BigEndian.Uint32(b[20:]),
	}
}

// WALChecksum continues SQLite's WAL checksum from (s1, s2) over b, whose
// length must be a multiple of 8.
func WALChecksum(bigEndian bool, s1, s2 uint32, b []byte) (uint32, uint32) {
	b = b[:len(b)&^7]
	if bigEndian {
		for len(b) >= 8 {
			s1 += binary.BigEndian.Uint32(b) + s2
			s2 += binary.BigEndian.Uint32(b[4:]) + s1
			b = b[8:]
		}
		return s1, s2
	}
	for len(b) >= 8 {
		s1 += binary.LittleEndian.Uint32(b) + s2
		s2 += binary.LittleEndian.Uint32(b[4:]) + s1
		b = b[8:]
	}
	return s1, s2
}
