package tests

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashLoop (issue 10): a writer (tests/py/crashwriter.py) is killed
// with SIGKILL at a random point, again and again; every few rounds a
// writer without the extension appends rows first, so the next opener must
// snapshot and may be killed while it does. After every kill the replica is
// restored and checked: a committed prefix of the source (rows 1..m, each
// as the source has it), every row acknowledged by litestream_sync in it,
// and `ltxrestore verify` finds no gap in the TXID chain. At the end a
// clean writer syncs and the restore equals the source.
//
// CRASH_LOOPS sets the number of rounds (default 25); the figures go to
// the log as "CRASH-LOOP".
func TestCrashLoop(t *testing.T) {
	loops := envCount(t, "CRASH_LOOPS", 25)
	seed := newSeed(t)
	rnd := rand.New(rand.NewPCG(seed, 1))
	dir, db := newDB(t)
	replica := defaultReplica(db)
	writer := filepath.Join(filepath.Dir(pyClientPath), "crashwriter.py")
	// Short compaction intervals, snapshot interval and retention: the
	// kills also land in compactions, in snapshots built from the
	// replica's files and in deletions.
	uri := dbURI(db, "compaction=1s,3s", "l0-retention=1s", "snapshot-interval=2s", "retention=4s")
	var acked, killedAfterOpen, plainRounds, checked int64
	start := time.Now()
	for i := 0; i < loops; i++ {
		if i%5 == 4 {
			// A writer without the extension: its rows reach the replica
			// only through the next extension process's snapshot.
			r := runCmd(t, dir, nil, nil, python3Bin, writer, "-", db, strconv.FormatUint(rnd.Uint64()>>1, 10))
			if r.Code != 0 || !strings.Contains(r.Stdout, "DONE") {
				t.Fatalf("round %d: plain writer\n%s", i, r)
			}
			plainRounds++
		}
		delay := time.Duration(rnd.IntN(400)) * time.Millisecond
		if rnd.IntN(4) == 0 {
			delay = time.Duration(rnd.IntN(30)) * time.Millisecond // in open, reconcile or a snapshot
		}
		ack, opened, out := killWriterAfter(t, dir, writer, uri, rnd.Uint64()>>1, delay)
		if opened {
			killedAfterOpen++
		}
		acked = max(acked, ack)
		checked += checkCommittedPrefix(t, i, db, replica, acked, out)
	}
	// A clean process syncs and exits: the restore equals the source.
	r := runCmd(t, dir, nil, strings.NewReader("SELECT litestream_sync(30000);\n"), python3Bin, pyClientPath, extPath, uri)
	if r.Code != 0 || strings.Contains(r.Stdout, "ERR") {
		t.Fatalf("final sync\n%s", r)
	}
	verifyRestore(t, db, fileURL(replica))
	requireChain(t, replica)
	// The next owner finishes what the killed ones left: every level-0
	// file compacted into level 1 and expired.
	p := startC(t, db, uri, nil)
	if _, ok := p.pollStatus(15*time.Second, func(status) bool { return replicaLTXFiles(t, replica)["0"] == 0 }); !ok {
		ls := runCmd(t, dir, nil, nil, ltxrestorePath, "ls", fileURL(replica))
		t.Errorf("level-0 files left 15 s after the last kill: %v\n%s\nlast owner's stderr:\n%s", replicaLTXFiles(t, replica), ls.Stdout, tail(p.stderr.String(), 3000))
	}
	if r := p.close(); r.Code != 0 {
		t.Fatalf("last owner\n%s", r)
	}
	verifyRestore(t, db, fileURL(replica))
	t.Logf("CRASH-LOOP rounds=%d killed_after_open=%d plain_writer_rounds=%d max_acked_seq=%d rows_checked=%d elapsed=%s seed=%d",
		loops, killedAfterOpen, plainRounds, acked, checked, time.Since(start).Round(time.Second), seed)
}

// killWriterAfter starts the crash writer, kills it with SIGKILL delay after
// it printed START (or at once if it never does within 20 s), and returns
// the highest acknowledged seq it printed, whether it got as far as START,
// and its output.
func killWriterAfter(t *testing.T, dir, writer, uri string, seed uint64, delay time.Duration) (int64, bool, string) {
	t.Helper()
	cmd := exec.Command(python3Bin, writer, extPath, uri, strconv.FormatUint(seed, 10))
	cmd.Dir = dir
	cmd.Env = childEnv(nil)
	var ack int64
	var out strings.Builder
	started := false
	killAfterStart(t, cmd, delay, 20*time.Second, func(l string) bool {
		out.WriteString(l + "\n")
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "START" && !started:
			started = true
			return true
		case len(f) == 3 && f[0] == "ACK":
			n, _ := strconv.ParseInt(f[1], 10, 64)
			ack = max(ack, n)
		}
		return false
	})
	return ack, started, out.String()
}

// killAfterStart starts cmd and hands each line of its stdout to line,
// which reports whether it is the start line; delay after it (or timeout
// after the start of cmd, if no start line comes) the process is killed
// with SIGKILL (our child, by PID). It reads stdout to the end, waits, and
// fails the test unless the signal ended the process. It returns stderr.
func killAfterStart(t *testing.T, cmd *exec.Cmd, delay, timeout time.Duration, line func(string) bool) string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var kill <-chan time.Time
	deadline := time.After(timeout)
	var out strings.Builder
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			if out.Len() < 4096 {
				out.WriteString(l + "\n")
			}
			if line(l) && kill == nil {
				kill = time.After(delay)
			}
		case <-kill:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			kill = nil
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			deadline = nil
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("%s was not killed (%v): it ended on its own\n%s\nstderr:\n%s", filepath.Base(cmd.Path), err, out.String(), tail(stderr.String(), 3000))
	}
	return stderr.String()
}

// checkCommittedPrefix restores the replica and requires it to hold rows
// 1..m of table c exactly as a copy of the source holds them, with m at
// least acked; it returns m.
func checkCommittedPrefix(t *testing.T, round int, db, replica string, acked int64, out string) int64 {
	t.Helper()
	// A copy: a connection on the source itself would checkpoint and
	// delete its WAL on close, a writer the replicator never hears of.
	src := filepath.Join(t.TempDir(), "src.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(db + suffix)
		if err != nil && !(suffix == "-wal" && os.IsNotExist(err)) {
			t.Fatal(err)
		}
		if err == nil {
			if err := os.WriteFile(src+suffix, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	r := runCmd(t, filepath.Dir(restored), nil, nil, ltxrestorePath, "-o", restored, fileURL(replica))
	if r.Code != 0 {
		// Killed before its first upload completed: nothing to restore
		// (at most an abandoned temporary file, which the restore names).
		if acked == 0 && strings.Contains(r.Stderr, "replica has no ltx files") {
			return 0
		}
		t.Fatalf("round %d: restore failed (seq %d acknowledged)\n%s\nwriter:\n%s", round, acked, r, out)
	}
	integrityCheck(t, restored)
	q := fmt.Sprintf("ATTACH '%s' AS s; SELECT count(*), coalesce(max(seq), 0) FROM c; "+
		"SELECT count(*) FROM c JOIN s.c AS sc USING (seq) WHERE c.pad = sc.pad;", src)
	hasTable := sqlitePlain(t, restored, "SELECT count(*) FROM sqlite_schema WHERE name = 'c';")
	if hasTable == "0" {
		if acked > 0 {
			t.Fatalf("round %d: the restore has no table c, but seq %d was acknowledged\n%s", round, acked, out)
		}
		return 0
	}
	got := strings.Fields(strings.ReplaceAll(sqlitePlain(t, restored, q), "|", " "))
	if len(got) != 3 {
		t.Fatalf("round %d: query output %q", round, got)
	}
	count, _ := strconv.ParseInt(got[0], 10, 64)
	maxSeq, _ := strconv.ParseInt(got[1], 10, 64)
	same, _ := strconv.ParseInt(got[2], 10, 64)
	if count != maxSeq || same != count {
		t.Fatalf("round %d: the restore is not a committed prefix of the source: %d rows, max seq %d, %d equal to the source's\n%s", round, count, maxSeq, same, out)
	}
	if maxSeq < acked {
		t.Fatalf("round %d: the restore ends at seq %d, but seq %d was acknowledged by litestream_sync\n%s", round, maxSeq, acked, out)
	}
	requireChain(t, replica)
	return maxSeq
}

// requireChain requires `ltxrestore verify` to find the replica's TXID
// chain whole, and every point after the oldest snapshot reachable (no
// compaction or expiry left a hole).
func requireChain(t *testing.T, replica string) {
	t.Helper()
	r := runCmd(t, filepath.Dir(replica), nil, nil, ltxrestorePath, "verify", fileURL(replica))
	if r.Code != 0 || !strings.Contains(r.Stdout, "ok") || strings.Contains(r.Stdout, "unreachable:") {
		ls := runCmd(t, filepath.Dir(replica), nil, nil, ltxrestorePath, "ls", fileURL(replica))
		t.Fatalf("ltxrestore verify %s\n%s\nls:\n%s", replica, r, ls.Stdout)
	}
}

// dirBytes returns the bytes of the files in dir whose names end in
// suffix ("" for all) and how many there are.
func dirBytes(dir, suffix string) (int64, int) {
	ents, _ := os.ReadDir(dir)
	var size int64
	n := 0
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && strings.HasSuffix(e.Name(), suffix) {
			size += fi.Size()
			n++
		}
	}
	return size, n
}

// killWhen polls cond every half millisecond for up to timeout and kills
// p with SIGKILL as soon as it holds; it reports whether it did.
func killWhen(p *cproc, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			p.kill()
			return true
		}
		time.Sleep(500 * time.Microsecond)
	}
	return false
}

// TestKillDuringCapture (issue 10): the owner killed with SIGKILL at three
// points of shipping 40 MB: while it writes a snapshot into the spool,
// while it uploads the snapshot, and while it uploads a large transaction.
// Each kill is made to land in its phase (the spool growing, a temporary
// file in the replica) and checked to have: the process that opens the
// database next, and only reads, ships it; the replica then equals the
// source with its TXID chain whole, one snapshot in all, and no temporary
// file of the killed upload left (they were never removed).
func TestKillDuringCapture(t *testing.T) {
	const rows = 10000 // of 4000 random bytes: 40 MB
	insert := fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "+
		"INSERT INTO big(b) SELECT randomblob(4000) FROM n;", rows)
	for _, tc := range []struct {
		name string
		// snapshot: the database is written without the extension, so the
		// first extension process snapshots it; otherwise it writes the
		// large transaction itself.
		snapshot bool
		phase    func(db string) bool
	}{
		{"SpoolingSnapshot", true, func(db string) bool {
			spooled, _ := dirBytes(filepath.Join(db+"-litestream", "spool"), ".seg")
			_, uploading := dirBytes(filepath.Join(defaultReplica(db), "ltx", "9"), "")
			return spooled > 4<<20 && uploading == 0
		}},
		{"UploadingSnapshot", true, func(db string) bool {
			_, n := dirBytes(filepath.Join(defaultReplica(db), "ltx", "9"), ".tmp")
			return n > 0
		}},
		{"UploadingTransaction", false, func(db string) bool {
			_, n := dirBytes(filepath.Join(defaultReplica(db), "ltx", "0"), ".tmp")
			return n > 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The phase lasts tens of milliseconds; a kill that comes too
			// late (the phase over) is tried again on a fresh database.
			for attempt := 1; ; attempt++ {
				dir, db := newDB(t)
				sqlitePlain(t, db, "PRAGMA journal_mode=WAL; CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB);")
				if tc.snapshot {
					sqlitePlain(t, db, insert)
				}
				p := startC(t, db, dbURI(db), nil)
				p.fileWarningsExpected = true
				if !tc.snapshot {
					p.must("SELECT count(*) FROM big;") // the first snapshot, of an empty table
					p.sync(30000)
					p.must(insert)
				}
				if !killWhen(p, 30*time.Second, func() bool { return tc.phase(db) }) {
					t.Fatalf("the owner never reached the phase\nstderr:\n%s", tail(p.stderr.String(), 3000))
				}
				if !tc.phase(db) {
					if attempt == 5 {
						t.Fatalf("5 kills came after the phase ended")
					}
					continue
				}
				_, tmps := dirBytes(filepath.Join(defaultReplica(db), "ltx", "9"), ".tmp")
				_, tmps0 := dirBytes(filepath.Join(defaultReplica(db), "ltx", "0"), ".tmp")
				t.Logf("killed in the phase at attempt %d; temporary files left: %d", attempt, tmps+tmps0)
				rd := runC(t, dir, dbURI(db), []string{"SELECT count(*) FROM big;", syncLine(60000)}, []string{"LITESTREAM_LOG_LEVEL=" + os.Getenv("KILL_LOG")})
				if rd.Code != 0 || !strings.Contains(rd.Stdout, strconv.Itoa(rows)+"\n") || strings.Contains(rd.Stdout, "ERR") {
					t.Fatalf("the next opener\n%s", rd)
				}
				verifyRestore(t, db, fileURL(defaultReplica(db)))
				requireChain(t, defaultReplica(db))
				if n := snapshotFiles(t, defaultReplica(db)); len(n) != 1 {
					t.Errorf("snapshots %q, want 1\nnext opener's stderr:\n%s", n, tail(rd.Stderr, 3000))
				}
				for _, level := range []string{"0", "9"} {
					if _, n := dirBytes(filepath.Join(defaultReplica(db), "ltx", level), ".tmp"); n > 0 {
						t.Errorf("%d temporary files of the killed upload left in ltx/%s", n, level)
					}
				}
				return
			}
		})
	}
}
