package replicator

import (
	"fmt"

	"github.com/superfly/ltx"
)

// Step is one committed transaction applied on top of a state: the pages
// it wrote (any order) and the database size after it, in pages.
type Step struct {
	Commit uint32
	Pgnos  []uint32
	Read   PageReader // reads the step's version of a page in Pgnos
}

// Reconcile reads the database state and, if its checksum equals the last
// spooled position's, adopts it as the base state so capture resumes
// without a snapshot. It reports whether it matched. verify (optional)
// runs after the last page is read; its error is returned.
func (r *Replicator) Reconcile(pageSize, commit uint32, read PageReader, verify func() error) (bool, error) {
	i, err := r.ReconcileSteps(pageSize, commit, read, nil, verify)
	return i == 0, err
}

// ReconcileSteps is Reconcile over a sequence of states: the base state
// (commit pages, read by read), then the state after each step in turn. It
// adopts the first state whose checksum equals the last spooled position's
// and returns its index (0: the base, i: after steps[i-1]), or -1 if none
// matched. A process that starts while transactions committed since the
// spool's last position are still in the WAL resumes at the WAL position
// the spool ends at (those transactions then ship as history) instead of
// snapshotting.
func (r *Replicator) ReconcileSteps(pageSize, commit uint32, read PageReader, steps []Step, verify func() error) (int, error) {
	pos := r.Pos()
	if pos.TXID == 0 || r.broken.Load() {
		// A broken chain (files dropped from the spool) cannot be resumed
		// even where the state matches: the replica lacks what was dropped.
		return -1, nil
	}
	c, err := scan(pageSize, commit, read)
	if err != nil {
		return -1, err
	}
	match := -1
	if commit > 0 && c.Checksum() == pos.PostApplyChecksum {
		match = 0
	}
	buf := make([]byte, pageSize)
	h := ltx.NewHasher()
	lock := ltx.LockPgno(pageSize)
	var adopted *pageChecksums
	if match == 0 {
		adopted = c.clone()
	}
	for i := 0; match < 0 && i < len(steps); i++ {
		st := steps[i]
		d := newDelta(c, st.Commit)
		seen := make(map[uint32]bool, len(st.Pgnos))
		for _, pgno := range st.Pgnos {
			if pgno > st.Commit || pgno == lock || seen[pgno] {
				continue
			}
			seen[pgno] = true
			if err := st.Read(pgno, buf); err != nil {
				return -1, fmt.Errorf("read page %d of step %d: %w", pgno, i+1, err)
			}
			d.set(pgno, ltx.ChecksumPageWithHasher(h, pgno, buf))
		}
		d.apply()
		if st.Commit > 0 && c.Checksum() == pos.PostApplyChecksum {
			match, adopted = i+1, c
		}
	}
	if verify != nil {
		if err := verify(); err != nil {
			return -1, err
		}
	}
	if match >= 0 {
		r.crcs = adopted
	}
	return match, nil
}
