package replicator

import (
	"slices"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// Local copies of shipped level-0 files. Compacting level 0 into level 1
// reads every level-0 file of the window; on a remote store that was one
// GET per upload. So after an upload the spool records it was made from
// stay (instead of being released) until a compaction took them as its
// inputs. Merging the records of one level-0 file gives the same pages,
// checksums and timestamp as the file. The first input of each
// compaction is still read from the store: that GET also finds a replica
// emptied underneath. Directory replicas keep none: their files are local
// already. A restart drops the copies (the records are then older than
// the replica's position), and compaction reads the store.
//
// Bounds: the spool segments the copies keep from being removed hold at
// most LocalCopyBytes (a copy pins its whole segment: a snapshot written
// after it into the same segment counts too; oldest copies go first), and
// one compaction reads at most localInputs records locally (each is an
// input of ltx.Compactor, with its page buffer); copies past that are
// read from the store.

// DefaultLocalCopyBytes bounds the spool space kept for local copies of
// shipped level-0 files.
const DefaultLocalCopyBytes = 64 << 20

// localInputs bounds the spool records one compaction reads locally.
const localInputs = 512

// localCopy is the spool records of one shipped level-0 file.
type localCopy struct {
	minTXID, maxTXID ltx.TXID
	entries          []*spoolEntry
}

// keepsCopies reports whether shipped level-0 files are kept locally.
func (r *Replicator) keepsCopies() bool {
	if _, local := r.client.(replica.LocalChecker); local {
		return false
	}
	return len(r.opts.Compaction.Intervals) > 0 && r.opts.LocalCopyBytes >= 0
}

// keepCopyLocked keeps batch, just shipped as one level-0 file, as its
// local copy; a batch an overflow released meanwhile is not kept. Caller
// holds r.mu; trimCopiesLocked applies the bound.
func (r *Replicator) keepCopyLocked(batch []*spoolEntry) {
	if slices.ContainsFunc(batch, r.spool.isReleased) {
		for _, e := range batch {
			r.spool.release(e)
		}
		return
	}
	r.copies = append(r.copies, &localCopy{minTXID: batch[0].MinTXID, maxTXID: batch[len(batch)-1].MaxTXID, entries: batch})
}

// trimCopiesLocked releases the oldest copies while the segments they pin
// hold more than the bound. Caller holds r.mu.
func (r *Replicator) trimCopiesLocked() {
	limit := r.opts.LocalCopyBytes
	if limit == 0 {
		limit = DefaultLocalCopyBytes
	}
	for len(r.copies) > 0 {
		segs := make(map[*segment]bool)
		for _, c := range r.copies {
			for _, e := range c.entries {
				segs[e.seg] = true
			}
		}
		if r.spool.segmentBytes(segs) <= limit {
			return
		}
		r.dropCopyLocked(0)
	}
}

// dropCopyLocked releases the i-th copy. Caller holds r.mu.
func (r *Replicator) dropCopyLocked(i int) {
	for _, e := range r.copies[i].entries {
		r.spool.release(e)
	}
	r.copies = slices.Delete(r.copies, i, i+1)
}

// dropCopiesLocked releases the copies of files (nil: every copy; the
// replica moved or was emptied, or Close). Caller holds r.mu.
func (r *Replicator) dropCopiesLocked(files []*ltx.FileInfo) {
	for i := len(r.copies) - 1; i >= 0; i-- {
		c := r.copies[i]
		if files == nil || slices.ContainsFunc(files, func(f *ltx.FileInfo) bool {
			return f.Level == 0 && f.MinTXID == c.minTXID && f.MaxTXID == c.maxTXID
		}) {
			r.dropCopyLocked(i)
		}
	}
}

func (r *Replicator) dropCopies(files []*ltx.FileInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropCopiesLocked(files)
}

// takeCopy returns readers of the local copy of the level-0 file f and a
// function that releases it, or ok false if there is none or it has more
// records than budget. The copy is taken out of the list: the compaction
// that reads it replaces the file by level 1, so it is not needed again.
func (r *Replicator) takeCopy(f *ltx.FileInfo, budget int) (ins []mergeInput, done func(), ok bool) {
	if f.Level != 0 {
		return nil, nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.copies, func(c *localCopy) bool { return c.minTXID == f.MinTXID && c.maxTXID == f.MaxTXID })
	if i < 0 {
		return nil, nil, false
	}
	c := r.copies[i]
	r.copies = slices.Delete(r.copies, i, i+1)
	done = func() {
		for _, e := range c.entries {
			r.spool.release(e)
		}
	}
	if len(c.entries) > budget {
		done()
		return nil, nil, false
	}
	for _, e := range c.entries {
		ins = append(ins, mergeInput{r: r.spool.reader(e), size: e.Size})
	}
	return ins, done, true
}
