package vfs

import (
	"os"
	"sync"
	"time"
)

// Writers without the extension. Their commits are announced by no shim:
// the owner finds them in the WAL at its next step. Two things make that
// step come sooner and say so: litestream_status() in the owner compares
// the WAL file's size and modification time with what they were when the
// last step began (one stat) and, if they changed, reports "behind" and
// wakes the capture loop; and transactions a step captured that nobody
// announced or signalled are counted as foreign and logged (once a minute
// at most).

// walStamp is what a stat of the WAL says of its last change.
type walStamp struct {
	size  int64
	mtime time.Time
	ok    bool
}

func (db *DB) statWAL() walStamp {
	fi, err := os.Stat(db.cfg.Path + "-wal")
	if err != nil {
		return walStamp{}
	}
	return walStamp{size: fi.Size(), mtime: fi.ModTime(), ok: true}
}

// walChanged reports whether the WAL changed since the last completed step
// began; if so it wakes the capture loop (status is asked: the answer
// must not stay "ok" for commits no one announced).
func (db *DB) walChanged() bool {
	db.mu.Lock()
	seen, stepped := db.walSeen, db.stepped
	db.mu.Unlock()
	if !stepped {
		return false
	}
	if now := db.statWAL(); now != seen {
		db.host.Notify()
		return true
	}
	return false
}

// foreignCount tells captured transactions nobody announced from the
// rest: every commit of an extension-loaded connection is announced by
// this process's shim or published in the shared state's commit block by
// another's. A step accounts the announcements made before it began (it
// captured those commits, or a snapshot covered them: a surplus is
// dropped) against the transactions it captured; a shortfall is judged
// 50 ms later, against every announcement made by then (one that came
// just after its commit was read has arrived). A surplus then belongs to
// commits a later step captures and is kept for it. (Accounting the
// announcements made by the end of the step dropped, as covered by a
// snapshot, those of commits just after what the step read, and their
// capture by the next step then counted as foreign:
// TestForeignCount/RacingCommit.)
type foreignCount struct {
	mu        sync.Mutex
	announced uint64 // this process's announcements when last read
	published uint32 // the shared commit block's seqlock when last read
	balance   int64  // announcements not matched by captures, minus captures not matched by announcements
	judge     *time.Timer

	// read returns the announcement counters now; found is told of
	// foreign transactions. Set by newForeignCount.
	read  func() (announced uint64, published uint32)
	found func(n int64)
	delay time.Duration // before a shortfall is judged
	// guard runs the verdict (a timer's goroutine: a panic there would
	// kill the host); newForeignCount's calls it directly.
	guard func(name string, fn func())
}

func newForeignCount(read func() (uint64, uint32), found func(int64)) *foreignCount {
	return &foreignCount{read: read, found: found, delay: 50 * time.Millisecond, guard: func(_ string, fn func()) { fn() }}
}

// readCounters returns this process's announcements and the shared commit
// block's publications (another process's shim publishes each commit
// under the block's seqlock: two increments per commit).
func (db *DB) readCounters() (uint64, uint32) {
	return db.host.Events().Announced, db.sh.u32(offCommitLock).Load() &^ 1
}

// account adds what was announced and published up to the counters a, p.
func (f *foreignCount) account(a uint64, p uint32) {
	// Signed differences: a step accounts counters read before it began,
	// which may be behind what a verdict accounted meanwhile.
	f.balance += int64(a-f.announced) + int64(int32(p-f.published))/2
	f.announced, f.published = a, p
}

// reset starts counting from counters read before the first step (a, p):
// what that step captured is not foreign, and what was announced after
// it began is matched by the steps that capture it.
func (f *foreignCount) reset(a uint64, p uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced, f.published, f.balance = a, p, 0
}

// step accounts for a step that began with the counters a, p and captured
// txns transactions.
func (f *foreignCount) step(a uint64, p uint32, txns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.account(a, p)
	f.balance -= int64(txns)
	if f.balance >= 0 {
		f.balance = 0 // announced before the step, not captured: a snapshot covered them
		return
	}
	if f.judge == nil {
		f.judge = time.AfterFunc(f.delay, func() { f.guard("foreign verdict", f.verdict) })
	}
}

// verdict counts as foreign what is still unmatched once every
// announcement made by now is accounted.
func (f *foreignCount) verdict() {
	n := func() int64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.judge = nil
		f.account(f.read())
		n := -f.balance
		if n > 0 {
			f.balance = 0
		}
		return n
	}()
	if n > 0 {
		f.found(n)
	}
}

// foundForeign records n transactions of writers without the extension
// and warns (once a minute at most).
func (db *DB) foundForeign(n int64) {
	db.mu.Lock()
	db.foreignTxns += n
	db.lastForeignAt = time.Now()
	warn := db.lastForeignWarn.IsZero() || time.Since(db.lastForeignWarn) >= time.Minute
	if warn {
		db.lastForeignWarn = db.lastForeignAt
	}
	total := db.foreignTxns
	db.mu.Unlock()
	if warn {
		db.logger.Warn("found commits of a writer without the extension; replicated them (load the extension in every writer: its commits then reach the replica at once)",
			"txns", n, "foreign_txns_total", total)
	}
}
