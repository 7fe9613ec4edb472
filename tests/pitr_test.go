package tests

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pitrStep is the state recorded after one step of TestPITR.
type pitrStep struct {
	txid int64     // litestream_sync's result
	at   time.Time // just after the step's process exited
	hash string    // dumpHash of the database then
}

// restoredTXID matches ltxrestore's success line.
var restoredTXID = regexp.MustCompile(`restored TXID (\d+) `)

// TestPITR runs a workload in steps, each its own sqlite3 process ending
// with litestream_sync, records each step's TXID, time and .dump hash, and
// restores every step by -txid and by -timestamp.
func TestPITR(t *testing.T) {
	const steps = 10
	_, db := newDB(t)
	url := fileURL(defaultReplica(db))
	seed := newSeed(t)
	var recorded []pitrStep
	byTXID := make(map[int64]string) // txid -> hash
	before := time.Now()
	for i := range steps {
		time.Sleep(5 * time.Millisecond) // header timestamps are milliseconds
		lines := append([]string{"PRAGMA journal_mode=WAL;"}, workload(seed+uint64(i), 8)...)
		lines = append(lines, syncLine(60000))
		txid := lastTXID(t, shellWrite(t, db, dbURI(db), lines, shellOpts{}))
		s := pitrStep{txid: txid, at: time.Now(), hash: dumpHash(t, db)}
		if n := len(recorded); n > 0 && txid <= recorded[n-1].txid {
			t.Fatalf("step %d: TXID %d, not past step %d's %d", i, txid, i-1, recorded[n-1].txid)
		}
		recorded = append(recorded, s)
		byTXID[txid] = s.hash
	}

	// The TXIDs a restore can target: those that end a file.
	r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "ls", "-json", url)
	if r.Code != 0 {
		t.Fatalf("ltxrestore ls -json failed\n%s", r)
	}
	var ls struct {
		Files []struct {
			MaxTXID int64 `json:"max_txid"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ls); err != nil {
		t.Fatalf("decode ls -json: %v\n%s", err, r.Stdout)
	}
	ends := make(map[int64]bool)
	for _, f := range ls.Files {
		ends[f.MaxTXID] = true
	}

	for i, s := range recorded {
		t.Run("Step"+strconv.Itoa(i), func(t *testing.T) {
			txid, want := s.txid, s.hash
			if !ends[txid] {
				// Not restorable by the planner's rule: use the nearest
				// restorable TXID below it, if it is a recorded state.
				for txid = s.txid - 1; txid > 0 && !ends[txid]; txid-- {
				}
				t.Logf("TXID %d ends no file; nearest restorable is %d", s.txid, txid)
				var ok bool
				if want, ok = byTXID[txid]; !ok {
					t.Skipf("TXID %d ends no file and %d is not a recorded state", s.txid, txid)
				}
			}
			out := restore(t, url, "-txid", strconv.FormatInt(txid, 10))
			if got := dumpHash(t, out); got != want {
				t.Errorf("-txid %d: .dump sha256 %s, want %s", txid, got, want)
			}

			ts := s.at.Format(time.RFC3339Nano)
			out = filepath.Join(t.TempDir(), "at.db")
			r := runCmd(t, filepath.Dir(out), nil, nil, ltxrestorePath, "-timestamp", ts, "-o", out, url)
			if r.Code != 0 {
				t.Fatalf("ltxrestore -timestamp %s failed\n%s", ts, r)
			}
			m := restoredTXID.FindStringSubmatch(r.Stderr)
			if m == nil {
				t.Fatalf("no 'restored TXID' line in %q", r.Stderr)
			}
			if got, want := m[1], strconv.FormatInt(txid, 10); got != want {
				t.Fatalf("-timestamp %s restored TXID %s, want %s", ts, got, want)
			}
			if got := dumpHash(t, out); got != want {
				t.Errorf("-timestamp %s: .dump sha256 %s, want %s", ts, got, want)
			}
		})
	}

	t.Run("BeforeFirst", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "early.db")
		ts := before.Add(-time.Second).Format(time.RFC3339Nano)
		r := runCmd(t, filepath.Dir(out), nil, nil, ltxrestorePath, "-timestamp", ts, "-o", out, url)
		if r.Code != 1 || !strings.Contains(r.Stderr, "before the first restorable state") {
			t.Fatalf("-timestamp %s: want exit 1 naming the first restorable state\n%s", ts, r)
		}
		if fileExists(out) {
			t.Fatalf("%s exists after a failed restore", out)
		}
	})

	t.Run("Verify", func(t *testing.T) {
		r := runCmd(t, t.TempDir(), nil, nil, ltxrestorePath, "verify", url)
		last := recorded[len(recorded)-1].txid
		if want := "ok: latest restorable TXID " + strconv.FormatInt(last, 10); r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Fatalf("verify: want exit 0 and %q\n%s", want, r)
		}
	})
}
