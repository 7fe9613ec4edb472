package replicator

import (
	"io"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// Local copies of shipped level-0 files. Compacting level 0 into level 1
// reads every level-0 file of the window; on a remote store that was one
// GET per upload. So after an upload the spool records it was made from
// stay (instead of being released) until a compaction took them as its
// inputs, up to LocalCopyBytes (oldest released first beyond it). The
// copy is the spool's own record of what was uploaded: merging the
// records of one level-0 file gives the same pages, checksums and
// timestamps as the file. The first input of each compaction is still
// read from the store: that GET also finds a replica emptied underneath.
// A restart drops the copies (the records are
// then older than the replica's position); compaction then reads the
// store. Directory replicas keep none: their files are local already.

// DefaultLocalCopyBytes bounds the spool space kept for local copies of
// shipped level-0 files.
const DefaultLocalCopyBytes = 64 << 20

// localCopy is the spool records of one shipped level-0 file.
type localCopy struct {
	minTXID, maxTXID ltx.TXID
	entries          []*spoolEntry
	size             int64
}

// keepsCopies reports whether shipped level-0 files are kept locally.
func (r *Replicator) keepsCopies() bool {
	if _, local := r.client.(replica.LocalChecker); local {
		return false
	}
	return len(r.opts.Compaction.Intervals) > 0 && r.opts.LocalCopyBytes >= 0
}

// keepCopy keeps batch, just shipped as one level-0 file, as its local
// copy, releasing the oldest copies past the bound. Caller holds r.mu.
func (r *Replicator) keepCopyLocked(batch []*spoolEntry) {
	c := &localCopy{minTXID: batch[0].MinTXID, maxTXID: batch[len(batch)-1].MaxTXID, entries: batch}
	for _, e := range batch {
		c.size += e.Size
	}
	r.copies = append(r.copies, c)
	r.copyBytes += c.size
	limit := r.opts.LocalCopyBytes
	if limit == 0 {
		limit = DefaultLocalCopyBytes
	}
	for len(r.copies) > 0 && r.copyBytes > limit {
		r.dropCopyLocked(0)
	}
}

// dropCopyLocked releases the i-th copy. Caller holds r.mu.
func (r *Replicator) dropCopyLocked(i int) {
	c := r.copies[i]
	for _, e := range c.entries {
		r.spool.release(e)
	}
	r.copyBytes -= c.size
	r.copies = append(r.copies[:i], r.copies[i+1:]...)
}

// dropCopies releases every local copy (the replica moved, or Close).
func (r *Replicator) dropCopies() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.copies) > 0 {
		r.dropCopyLocked(0)
	}
}

// takeCopy returns readers of the local copy of the level-0 file f and a
// function that releases it, or ok false if there is none. The copy is
// taken out of the list: the compaction that reads it replaces the file
// by level 1, so it is not needed again.
func (r *Replicator) takeCopy(f *ltx.FileInfo) (rdrs []io.Reader, done func(), ok bool) {
	if f.Level != 0 {
		return nil, nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.copies {
		if c.minTXID != f.MinTXID || c.maxTXID != f.MaxTXID {
			continue
		}
		r.copies = append(r.copies[:i], r.copies[i+1:]...)
		r.copyBytes -= c.size
		for _, e := range c.entries {
			rdrs = append(rdrs, r.spool.reader(e))
		}
		return rdrs, func() {
			for _, e := range c.entries {
				r.spool.release(e)
			}
		}, true
	}
	return nil, nil, false
}
