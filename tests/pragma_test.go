package tests

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPragmas: PRAGMA litestream_txid, litestream_lag and
// litestream_status answer what litestream_sync and litestream_status()
// do, in the owner and in another process, for clients that can only send
// PRAGMAs; other litestream_* names and values are errors, other PRAGMAs
// pass through.
func TestPragmas(t *testing.T) {
	t.Run("Replicating", func(t *testing.T) {
		_, db := newDB(t)
		p := startC(t, db, dbURI(db), nil)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
		txid := p.sync(20000)
		q := startC(t, db, dbURI(db), nil)
		for name, c := range map[string]*cproc{"owner": p, "other process": q} {
			if got := c.must("PRAGMA litestream_txid;"); len(got) != 1 || got[0] != strconv.FormatInt(txid, 10) {
				t.Errorf("%s: PRAGMA litestream_txid = %q, want %d (litestream_sync's)", name, got, txid)
			}
			if got := c.must("PRAGMA litestream_lag;"); len(got) != 1 || got[0] != "0.000" {
				t.Errorf("%s: PRAGMA litestream_lag = %q after a sync, want 0.000", name, got)
			}
			got := c.must("PRAGMA LiteStream_Status;")
			if len(got) != 1 {
				t.Fatalf("%s: PRAGMA litestream_status = %q, want one row", name, got)
			}
			if st := parseStatus(t, got[0]); st.Int("replicated_txid") != txid {
				t.Errorf("%s: PRAGMA litestream_status = %s, want replicated_txid %d", name, st, txid)
			}
		}
		for _, tc := range []struct{ sql, want string }{
			{"PRAGMA litestream_bogus;", "unknown pragma: litestream_bogus"},
			{"PRAGMA litestream_txid = 5;", "read-only"},
			{"PRAGMA main.litestream_lag(1);", "read-only"},
		} {
			if _, e := p.exec(tc.sql); !strings.Contains(e, tc.want) {
				t.Errorf("%s: error %q, want one containing %q", tc.sql, e, tc.want)
			}
		}
		if got := p.must("PRAGMA cache_size = 500; PRAGMA cache_size;"); len(got) != 1 || got[0] != "500" {
			t.Errorf("PRAGMA cache_size through the litestream VFS: %q, want 500", got)
		}
		for _, c := range []*cproc{q, p} {
			if r := c.close(); r.Code != 0 {
				t.Fatalf("C client exit\n%s", r)
			}
		}
	})

	// With the store unreachable, the lag grows from the first capture.
	t.Run("StoreDown", func(t *testing.T) {
		_, db := newDB(t)
		creds := []string{"LITESTREAM_ACCESS_KEY_ID=test", "LITESTREAM_SECRET_ACCESS_KEY=test", "LITESTREAM_EXIT_FLUSH_MS=0"}
		p := startC(t, db, dbURI(db, "replica=s3://bkt/db", "endpoint=http://127.0.0.1:1"), creds)
		p.must("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);")
		lag := func() float64 {
			got := p.must("PRAGMA litestream_lag;")
			v, err := strconv.ParseFloat(firstLine(got), 64)
			if err != nil {
				t.Fatalf("PRAGMA litestream_lag = %q: %v", got, err)
			}
			return v
		}
		time.Sleep(time.Second)
		lag1 := lag()
		time.Sleep(time.Second)
		if lag2 := lag(); lag1 <= 0 || lag2-lag1 < 0.9 || lag2-lag1 > 5 {
			t.Errorf("PRAGMA litestream_lag with the store down: %.3f, then %.3f a second later; want it positive and growing by about 1", lag1, lag2)
		}
		if st := p.status(); st.Int("pending_txns") <= 0 || st.Int("lag_ms") < 1000 {
			t.Errorf("status with the store down: %s, want pending transactions and lag_ms over 1000", st)
		}
		if r := p.close(); r.Code != 0 {
			t.Fatalf("C client exit\n%s", r)
		}
	})
}
