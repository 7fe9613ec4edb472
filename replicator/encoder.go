package replicator

import (
	"bufio"
	"io"

	"github.com/superfly/ltx"
)

// encoderCache hands out one reusable LTX encoder and write buffer for the
// capture goroutine. An ltx.Encoder embeds its LZ4 compressor's hash table
// (136 KiB) and the write buffer is 256 KiB: allocated per captured file,
// under load they made the Go runtime's allocator and collector cost more
// than the encoding itself. Not safe for concurrent use.
type encoderCache struct {
	out   redirect      // where the cached encoder writes
	bw    *bufio.Writer // buffers out
	enc   *ltx.Encoder
	fresh ltx.Encoder // enc as NewEncoder returned it
	page  []byte      // a page buffer
}

// redirect is an io.Writer whose target can change.
type redirect struct{ w io.Writer }

func (r *redirect) Write(p []byte) (int, error) { return r.w.Write(p) }

// get returns the encoder, reset to its state after ltx.NewEncoder and
// writing through a buffer to w. The caller flushes with flush.
func (c *encoderCache) get(w io.Writer) (*ltx.Encoder, error) {
	c.out.w = w
	if c.enc == nil {
		c.bw = bufio.NewWriterSize(&c.out, 256<<10)
		enc, err := ltx.NewEncoder(c.bw)
		if err != nil {
			return nil, err
		}
		c.enc, c.fresh = enc, *enc
	} else {
		// A copy of the value NewEncoder built restores every field (the
		// encoder has no reset); the compressor resets its table itself
		// on every block.
		*c.enc = c.fresh
		c.bw.Reset(&c.out)
	}
	return c.enc, nil
}

// flush writes out what the buffer holds.
func (c *encoderCache) flush() error { return c.bw.Flush() }

// pageBuf returns a buffer of size bytes, reused between calls.
func (c *encoderCache) pageBuf(size uint32) []byte {
	if uint32(cap(c.page)) < size {
		c.page = make([]byte, size)
	}
	return c.page[:size]
}
