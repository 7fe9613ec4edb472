package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCompaction (issue 11) in real time with short intervals: a C client
// writes for ~10 s with compaction=1s,4s and l0-retention=2s, recording
// the source's .dump hash at every TXID. Once it settles:
//   - level 1 and level 2 files exist and every level-0 file is gone
//     (each is covered by level 1 and older than l0-retention);
//   - the latest restore equals the source and reads at most the
//     snapshot, the level-2 files and the level-1 tail;
//   - restores to the TXIDs that end a level-1 or level-2 file equal the
//     source as it was then; a TXID inside a level-1 file is refused;
//   - the idle owner compacts no more and uses no CPU;
//   - `litestream restore` 0.5.16 restores the compacted replica (written
//     with checksums=false) to the same state.
func TestCompaction(t *testing.T) {
	ls := litestreamBin(t)
	_, db := newDB(t)
	replica := defaultReplica(db)
	p := startC(t, db, dbURI(db, "compaction=1s,4s", "l0-retention=2s", "checksums=false"), nil)
	p.must("PRAGMA journal_mode=WAL; CREATE TABLE c(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);")
	rnd := rand.New(rand.NewPCG(newSeed(t), 3))
	hashes := map[int64]string{} // TXID → .dump sha256 of the source then
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline) && i < 2000; i++ {
		switch rnd.IntN(4) {
		case 0:
			p.must(fmt.Sprintf("UPDATE c SET v = randomblob(%d) WHERE k = %d;", 100+rnd.IntN(900), rnd.IntN(20)))
		case 1:
			p.must(fmt.Sprintf("DELETE FROM c WHERE k = %d;", rnd.IntN(20)))
		default:
			p.must(fmt.Sprintf("INSERT INTO c(k, v) VALUES(%d, randomblob(%d));", rnd.IntN(20), 100+rnd.IntN(2000)))
		}
		hashes[p.sync(10000)] = dumpHash(t, db)
		time.Sleep(time.Duration(20+rnd.IntN(40)) * time.Millisecond)
	}
	// Settle: level 2's window (4 s) ends and l0-retention (2 s) passes.
	st, ok := p.pollStatus(20*time.Second, func(status) bool {
		files := replicaLTXFiles(t, replica)
		return files["0"] == 0 && files["2"] > 0 && lastLevelEnd(t, replica, "2") == maxKey(hashes)
	})
	files := replicaLTXFiles(t, replica)
	if !ok {
		t.Fatalf("compaction did not settle in 20 s: files by level %v, status %s", files, st)
	}
	t.Logf("%d transactions; replica files by level %v; status %s", len(hashes), files, st)
	if st.Int("replica_files") != int64(files["0"]+files["1"]+files["2"]+files["9"]) || st.Str("last_compaction_at") == "" {
		t.Errorf("status does not match the replica (%v): %s", files, st)
	}

	// Idle: once the last work is done (a snapshot built from the files
	// may follow the last compaction), no compaction and no CPU.
	for last, stable := st.Str("last_compaction_at"), time.Now(); time.Since(stable) < 2*time.Second; time.Sleep(100 * time.Millisecond) {
		if cur := p.status().Str("last_compaction_at"); cur != last {
			last, stable = cur, time.Now()
		}
		if time.Since(start) > time.Minute {
			t.Fatal("compaction never went quiet")
		}
	}
	st = p.status()
	files = replicaLTXFiles(t, replica)
	before, ticks := st.Str("last_compaction_at"), cpuTicks(t, p.cmd.Process.Pid)
	time.Sleep(3 * time.Second)
	if after := p.status(); after.Str("last_compaction_at") != before {
		t.Errorf("the idle owner compacted again: last_compaction_at %s -> %s", before, after.Str("last_compaction_at"))
	}
	if d := cpuTicks(t, p.cmd.Process.Pid) - ticks; d > 3 {
		t.Errorf("the idle owner used %d CPU ticks in 3 s", d)
	}

	// The latest state.
	verifyRestore(t, db, fileURL(replica))
	r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "-o", filepath.Join(t.TempDir(), "latest.db"), fileURL(replica))
	applied := restoredFiles(t, r.Stderr+r.Stdout)
	if limit := 1 + files["2"] + 4; applied > limit {
		t.Errorf("the latest restore read %d files, want at most %d (snapshot, level 2, the level-1 tail)", applied, limit)
	}

	// Point in time: every level-1 and level-2 boundary sampled, and a
	// TXID inside a level-1 file refused.
	ends := levelEnds(t, replica, "1", "2")
	for i, end := range ends {
		if i%3 != 0 && i != len(ends)-1 {
			continue
		}
		want, ok := hashes[end]
		if !ok {
			continue // the snapshot's TXID or the table's creation
		}
		pit := filepath.Join(t.TempDir(), "pit.db")
		r := runCmd(t, filepath.Dir(pit), nil, nil, ltxrestorePath, "-txid", strconv.FormatInt(end, 10), "-o", pit, fileURL(replica))
		if r.Code != 0 {
			t.Fatalf("restore to TXID %d (a level boundary)\n%s", end, r)
		}
		if got := dumpHash(t, pit); got != want {
			t.Errorf("restore to TXID %d: .dump sha256 %s, want %s", end, got, want)
		}
	}
	if inside := insideLevel1(ends); inside > 0 {
		r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "-txid", strconv.FormatInt(inside, 10), "-o", filepath.Join(t.TempDir(), "x.db"), fileURL(replica))
		if r.Code == 0 {
			t.Errorf("restore to TXID %d, inside a level-1 file whose level-0 files expired, succeeded", inside)
		}
	}

	// Litestream restores the compacted replica.
	lsOut := filepath.Join(t.TempDir(), "litestream.db")
	if r := runCmd(t, filepath.Dir(lsOut), nil, nil, ls, "restore", "-o", lsOut, fileURL(replica)); r.Code != 0 {
		t.Fatalf("litestream restore of the compacted replica\n%s", r)
	}
	compareDBs(t, db, lsOut)
	if r := p.close(); r.Code != 0 {
		t.Fatalf("client exit\n%s", r)
	}
}

var restoredFilesRE = regexp.MustCompile(`(\d+) files?\b`)

// restoredFiles parses how many files ltxrestore's summary line says it
// applied.
func restoredFiles(t *testing.T, out string) int {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "restored TXID") {
			if m := restoredFilesRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	t.Fatalf("no summary line in ltxrestore's output:\n%s", out)
	return 0
}

// levelEnds returns the MaxTXIDs of the files at the given levels, sorted.
func levelEnds(t *testing.T, replica string, levels ...string) []int64 {
	t.Helper()
	seen := map[int64]bool{}
	var ends []int64
	for _, level := range levels {
		for _, name := range levelFiles(t, replica, level) {
			var lo, hi int64
			if _, err := fmt.Sscanf(name, "%016x-%016x.ltx", &lo, &hi); err == nil && !seen[hi] {
				seen[hi] = true
				ends = append(ends, hi)
			}
		}
	}
	slices.Sort(ends)
	return ends
}

func lastLevelEnd(t *testing.T, replica, level string) int64 {
	ends := levelEnds(t, replica, level)
	if len(ends) == 0 {
		return 0
	}
	return ends[len(ends)-1]
}

// insideLevel1 returns a TXID strictly between two consecutive level
// boundaries more than one apart (0 if none).
func insideLevel1(ends []int64) int64 {
	for i := 1; i < len(ends); i++ {
		if ends[i]-ends[i-1] > 1 {
			return ends[i-1] + 1
		}
	}
	return 0
}

func maxKey(m map[int64]string) int64 {
	var k int64
	for v := range m {
		k = max(k, v)
	}
	return k
}

// contentHashSQL hashes table c's rows (the sqlite3 shell's sha3_query).
const contentHashSQL = "SELECT hex(sha3_query('SELECT * FROM c ORDER BY id'));"

// randomStep is one random change to table c.
func randomStep(rnd *rand.Rand) string {
	switch rnd.IntN(4) {
	case 0:
		return fmt.Sprintf("UPDATE c SET v = randomblob(%d) WHERE k = %d;", 100+rnd.IntN(900), rnd.IntN(20))
	case 1:
		return fmt.Sprintf("DELETE FROM c WHERE k = %d;", rnd.IntN(20))
	default:
		return fmt.Sprintf("INSERT INTO c(k, v) VALUES(%d, randomblob(%d));", rnd.IntN(20), 100+rnd.IntN(2000))
	}
}

// TestRetention (issue 11) in real time: compaction=1s,4s,16s,
// snapshot-interval=30s, retention=40s, l0-retention=2s, checksums=false.
// For 30 s the sqlite3 shell writes (printing each TXID with the table's
// hash), then for 30 s the python client, the hash of each TXID recorded.
// Once it settles: the first snapshot is gone (older than the window and
// no longer the base), the files per level stay within (retention +
// snapshot-interval) / interval + 2, the latest restore and `litestream
// restore` 0.5.16 equal the source, restores to sampled file ends inside
// the window equal the table then, and a TXID before the oldest kept
// snapshot is refused naming it.
func TestRetention(t *testing.T) {
	ls := litestreamBin(t)
	_, db := newDB(t)
	replica := defaultReplica(db)
	uri := dbURI(db, "compaction=1s,4s,16s", "snapshot-interval=30s", "retention=40s", "l0-retention=2s", "checksums=false")
	rnd := rand.New(rand.NewPCG(newSeed(t), 4))
	hashes := map[int64]string{}

	// The shell: one change, then its TXID and the table's hash, then a
	// pause, for 30 s.
	script := []string{"PRAGMA journal_mode=WAL;", "CREATE TABLE c(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);"}
	for i := 0; i < 250; i++ {
		script = append(script, randomStep(rnd),
			"SELECT 'H|'||litestream_sync(10000)||'|'||hex(sha3_query('SELECT * FROM c ORDER BY id'));", ".shell sleep 0.1")
	}
	start := time.Now()
	logEnv := []string{"LITESTREAM_LOG_LEVEL=" + os.Getenv("E2E_LOG")}
	for _, l := range shellWrite(t, db, uri, script, shellOpts{Env: logEnv}) {
		if f := strings.Split(l, "|"); len(f) == 3 && f[0] == "H" {
			txid, _ := strconv.ParseInt(f[1], 10, 64)
			hashes[txid] = f[2]
		}
	}
	t.Logf("the shell wrote %d transactions in %v", len(hashes), time.Since(start).Round(time.Second))

	// python3, another 30 s.
	p := startPy(t, db, uri, logEnv)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		p.must(randomStep(rnd))
		hashes[p.sync(10000)] = sqlitePlain(t, db, contentHashSQL)
		time.Sleep(time.Duration(50+rnd.IntN(100)) * time.Millisecond)
	}
	latest := maxKey(hashes)
	st, ok := p.pollStatus(40*time.Second, func(status) bool {
		files := replicaLTXFiles(t, replica)
		return files["0"] == 0 && lastLevelEnd(t, replica, "3") == latest
	})
	files := replicaLTXFiles(t, replica)
	if !ok {
		t.Fatalf("did not settle in 40 s: files by level %v, status %s", files, st)
	}
	t.Logf("%d transactions; files by level %v; status %s", len(hashes), files, st)
	snaps := levelFiles(t, replica, "9")
	if len(snaps) == 0 || snaps[0] == "0000000000000001-0000000000000001.ltx" {
		t.Errorf("snapshots %q: the first one (older than retention, no longer the base) is still there", snaps)
	}
	window := 70 * time.Second // retention + snapshot-interval
	for level, iv := range map[string]time.Duration{"1": time.Second, "2": 4 * time.Second, "3": 16 * time.Second} {
		if limit := int(window/iv) + 2; files[level] > limit {
			t.Errorf("level %s holds %d files, want at most %d", level, files[level], limit)
		}
	}

	if keep := os.Getenv("KEEP_REPLICA"); keep != "" {
		_ = os.CopyFS(keep, os.DirFS(replica))
		_ = os.WriteFile(keep+"/owner.log", []byte(p.stderr.String()), 0o644)
	}
	verifyRestore(t, db, fileURL(replica))
	lsOut := filepath.Join(t.TempDir(), "litestream.db")
	if r := runCmd(t, filepath.Dir(lsOut), nil, nil, ls, "restore", "-o", lsOut, fileURL(replica)); r.Code != 0 {
		t.Fatalf("litestream restore of the compacted replica\n%s", r)
	}
	compareDBs(t, db, lsOut)

	// Point in time inside the window, and before it.
	ends := levelEnds(t, replica, "1", "2", "3")
	checked := 0
	for i, end := range ends {
		want, ok := hashes[end]
		if !ok || (i%5 != 0 && i != len(ends)-1) {
			continue
		}
		pit := filepath.Join(t.TempDir(), "pit.db")
		if r := runCmd(t, filepath.Dir(pit), nil, nil, ltxrestorePath, "-txid", strconv.FormatInt(end, 10), "-o", pit, fileURL(replica)); r.Code != 0 {
			t.Fatalf("restore to TXID %d (a level boundary inside the window)\n%s", end, r)
		}
		if got := sqlitePlain(t, pit, contentHashSQL); got != want {
			t.Errorf("restore to TXID %d: table hash %s, want %s", end, got, want)
		}
		checked++
	}
	var oldest int64
	if _, err := fmt.Sscanf(snaps[0], "%016x-%016x.ltx", new(int64), &oldest); err == nil && oldest > 2 {
		r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "-txid", strconv.FormatInt(oldest-1, 10), "-o", filepath.Join(t.TempDir(), "old.db"), fileURL(replica))
		if r.Code == 0 || !strings.Contains(r.Stderr, snaps[0]) {
			t.Errorf("restore to TXID %d, before the oldest kept snapshot %s: want a refusal naming it\n%s", oldest-1, snaps[0], r)
		}
	}
	t.Logf("%d point-in-time restores checked", checked)
	if r := p.close(); r.Code != 0 {
		t.Fatalf("python client exit\n%s", r)
	}
}

// TestKillDuringExpiry (issue 11): the owner is killed with SIGKILL while
// it deletes expired level-0 files. What it leaves must restore every
// point a file still ends at: it deletes a level-1 file's level-0 files
// newest first (oldest first, a kill left the newer ones behind a hole,
// listed by ls but refused by restore). The next owner finishes the
// deletion. Rounds whose kill missed the deletion are run again.
func TestKillDuringExpiry(t *testing.T) {
	for round := 1; ; round++ {
		_, db := newDB(t)
		replica := defaultReplica(db)
		uri := dbURI(db, "compaction=2s", "l0-retention=1s")
		p := startC(t, db, uri, nil)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE c(id INTEGER PRIMARY KEY, v BLOB);")
		for i := 0; i < 800; i++ { // a level-0 file each: synced one by one
			p.must(fmt.Sprintf("INSERT INTO c(v) VALUES(randomblob(%d));", 50+i%200))
			p.sync(10000)
		}
		l0 := filepath.Join(replica, "ltx", "0")
		most := 0
		midway := killWhen(p, 30*time.Second, func() bool {
			ents, _ := os.ReadDir(l0)
			n := len(ents)
			most = max(most, n)
			return n > 0 && n < most
		})
		if !midway {
			p.close()
			t.Fatalf("round %d: no level-0 file was deleted in 30 s (%d at most)", round, most)
		}
		left := replicaLTXFiles(t, replica)["0"]
		if left == 0 && round < 5 {
			continue // the kill landed after the deletion: try again
		}
		if left == 0 {
			t.Fatalf("5 rounds, and no kill landed inside the deletion of the level-0 files")
		}
		t.Logf("round %d: killed with %d of %d level-0 files left", round, left, most)
		requireChain(t, replica)
		// The next owner finishes it; the replica equals the source.
		q := startC(t, db, uri, nil)
		if _, ok := q.pollStatus(15*time.Second, func(status) bool { return replicaLTXFiles(t, replica)["0"] == 0 }); !ok {
			t.Errorf("level-0 files left 15 s after the next owner opened: %v", replicaLTXFiles(t, replica))
		}
		if r := q.close(); r.Code != 0 {
			t.Fatalf("next owner\n%s", r)
		}
		requireChain(t, replica)
		verifyRestore(t, db, fileURL(replica))
		return
	}
}
