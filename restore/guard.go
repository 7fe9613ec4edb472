package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// errFrameSize is returned by frameGuard for a page frame whose declared
// size no LZ4 block of one page can have.
var errFrameSize = errors.New("page frame size out of range")

// frameGuard follows the structure of an LTX file as the decoder reads it,
// up to the end of the page block, so that corrupt input fails cleanly:
//
//   - a page frame whose size field exceeds the LZ4 bound for one page is
//     refused before the decoder allocates a buffer of that size (up to
//     4 GiB);
//   - io.EOF inside the header or page block becomes io.ErrUnexpectedEOF,
//     so a file truncated at a frame boundary reads as truncated.
//
// After the end-of-pages marker (or an old-format LZ4-frame page, whose
// length it cannot follow) it passes bytes through untouched.
type frameGuard struct {
	r        io.Reader
	state    int
	need     int     // bytes left in the current field
	field    [8]byte // the current header field
	fieldN   int     // bytes of field filled
	header   [ltx.HeaderSize]byte
	headerN  int
	maxFrame uint32 // bytes
}

const (
	guardHeader  = iota // reading the file header
	guardPageHdr        // reading a page header
	guardSize           // reading a page's size field
	guardData           // skipping page data
	guardPass           // past the page block
)

func newFrameGuard(r io.Reader) *frameGuard {
	return &frameGuard{r: r, state: guardHeader}
}

func (g *frameGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if gerr := g.observe(p[:n]); gerr != nil {
		return 0, gerr
	}
	if err == io.EOF && g.state != guardPass {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// observe advances the state machine over b.
func (g *frameGuard) observe(b []byte) error {
	for len(b) > 0 {
		switch g.state {
		case guardHeader:
			k := copy(g.header[g.headerN:], b)
			g.headerN += k
			b = b[k:]
			if g.headerN == ltx.HeaderSize {
				pageSize := binary.BigEndian.Uint32(g.header[8:])
				if !ltx.IsValidPageSize(pageSize) {
					pageSize = ltx.MaxPageSize // the decoder rejects the header
				}
				// lz4.CompressBlockBound
				g.maxFrame = pageSize + pageSize/255 + 16
				g.startField(guardPageHdr, ltx.PageHeaderSize)
			}
		case guardPageHdr, guardSize:
			k := copy(g.field[g.fieldN:g.need], b)
			g.fieldN += k
			b = b[k:]
			if g.fieldN < g.need {
				continue
			}
			if g.state == guardPageHdr {
				var ph ltx.PageHeader
				_ = ph.UnmarshalBinary(g.field[:ltx.PageHeaderSize])
				if ph.IsZero() || ph.Flags&ltx.PageHeaderFlagSize == 0 {
					g.state = guardPass
					continue
				}
				g.startField(guardSize, 4)
				continue
			}
			size := binary.BigEndian.Uint32(g.field[:4])
			if size > g.maxFrame {
				return fmt.Errorf("%w: %d bytes, at most %d", errFrameSize, size, g.maxFrame)
			}
			g.state, g.need = guardData, int(size)
		case guardData:
			k := min(g.need, len(b))
			g.need -= k
			b = b[k:]
			if g.need == 0 {
				g.startField(guardPageHdr, ltx.PageHeaderSize)
			}
		case guardPass:
			return nil
		}
	}
	if g.state == guardData && g.need == 0 {
		g.startField(guardPageHdr, ltx.PageHeaderSize)
	}
	return nil
}

// startField begins reading an n-byte field in state.
func (g *frameGuard) startField(state, n int) {
	g.state, g.need, g.fieldN = state, n, 0
}
