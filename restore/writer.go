package restore

import (
	"os"
	"sync"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/fsutil"
)

// maxRunBytes bounds one run of consecutive pages written at once.
const maxRunBytes = 1 << 20

// writebackBytes is how much of the database is covered between hints to
// the kernel to start writing it to disk, so the final fsync finds little
// left and the disk works while pages are decoded. Hints are given only
// while the snapshot (the last file) is applied: its pages come in order,
// so the range since the last hint is all written by then, by it or by a
// newer file. The newer files' pages are scattered; hinting them (the
// whole file, at first) made the kernel write them back one page at a
// time, each call blocking for ~100 ms, and a restore after a day of
// random updates took twice as long as one of a fresh snapshot
// (tests/bench_load.sh).
const writebackBytes = 32 << 20

// runBuffers is how many runs exist: one being filled, the rest queued or
// being written. Memory: runBuffers × maxRunBytes.
const runBuffers = 4

// pageWriter writes pages to the database on a goroutine of its own, in runs
// of consecutive pages, and sums the checksums of those asked for, so that
// decoding (on the caller's goroutine) and writing, summing and the
// kernel's writeback (on this one) overlap. Not safe for concurrent use by
// callers.
type pageWriter struct {
	f        *os.File
	pageSize int64

	cur  *run
	free chan *run
	work chan *run
	wg   sync.WaitGroup

	// Owned by the goroutine until close.
	sum    ltx.Checksum // XOR (without the flag) of the summed pages
	hintAt int64        // where the range not hinted yet starts (-1: no range)

	errMu sync.Mutex
	err   error // the first write error
}

// run is a buffer of consecutive pages.
type run struct {
	buf   []byte
	first uint32 // pgno of the first page
	sum   bool   // add the pages' checksums to the writer's sum
	hint  bool   // in order: the range up to its end may be hinted (writebackBytes)
}

func newPageWriter(f *os.File, pageSize uint32) *pageWriter {
	w := &pageWriter{
		f:        f,
		pageSize: int64(pageSize),
		free:     make(chan *run, runBuffers),
		work:     make(chan *run, runBuffers),
		hintAt:   -1,
	}
	for i := 0; i < runBuffers; i++ {
		w.free <- &run{buf: make([]byte, 0, maxRunBytes)}
	}
	w.wg.Add(1)
	go w.loop()
	return w
}

func (w *pageWriter) loop() {
	defer w.wg.Done()
	h := ltx.NewHasher()
	for r := range w.work {
		if w.firstErr() == nil {
			off := int64(r.first-1) * w.pageSize
			if _, err := w.f.WriteAt(r.buf, off); err != nil {
				w.setErr(err)
			} else if r.hint {
				if w.hintAt < 0 || w.hintAt > off {
					w.hintAt = off
				}
				if end := off + int64(len(r.buf)); end-w.hintAt >= writebackBytes {
					fsutil.StartWriteback(w.f, w.hintAt, end-w.hintAt)
					w.hintAt = end
				}
			}
		}
		if r.sum {
			for i := int64(0); i < int64(len(r.buf))/w.pageSize; i++ {
				w.sum ^= pageSum(h, r.first+uint32(i), r.buf[i*w.pageSize:(i+1)*w.pageSize])
			}
		}
		r.buf = r.buf[:0]
		w.free <- r
	}
}

func (w *pageWriter) setErr(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
}

func (w *pageWriter) firstErr() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// add queues page pgno (data: one page); sum says whether its checksum
// counts, hint that pages come in order from here on (the snapshot). It
// returns the first write error so far.
func (w *pageWriter) add(pgno uint32, data []byte, sum, hint bool) error {
	if c := w.cur; c != nil && (pgno != c.first+uint32(int64(len(c.buf))/w.pageSize) ||
		c.sum != sum || c.hint != hint || len(c.buf)+len(data) > maxRunBytes) {
		w.flush()
	}
	if w.cur == nil {
		w.cur = <-w.free
		w.cur.first, w.cur.sum, w.cur.hint = pgno, sum, hint
	}
	w.cur.buf = append(w.cur.buf, data...)
	return w.firstErr()
}

// flush hands the run being filled to the goroutine.
func (w *pageWriter) flush() {
	if w.cur != nil {
		w.work <- w.cur
		w.cur = nil
	}
}

// close writes out everything queued, stops the goroutine and returns the
// sum of the summed pages and the first write error. Safe to call more than
// once.
func (w *pageWriter) close() (ltx.Checksum, error) {
	if w.work != nil {
		w.flush()
		close(w.work)
		w.wg.Wait()
		w.work = nil
	}
	return w.sum, w.firstErr()
}
