//go:build !nometrics

package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/litestream-vfs/litestream_vfs/replicator"
	"github.com/litestream-vfs/litestream_vfs/vfs"
)

func statuses() []vfs.Status {
	return []vfs.Status{
		{DB: "/a.db", State: vfs.StateBehind, LocalTXID: 12, ReplicatedTXID: 10, PendingTxns: 2, PendingBytes: 8192, LagMS: 1500, Uploads: 7, Commits: 11, GateWaits: 3, GateWaitMS: 250, ForeignTxns: -1,
			UploadedBytes: 4096, UploadErrors: map[string]int64{"network": 3, "permanent": 1}, SpoolBytes: 65536, Compactions: 2, Snapshots: 1, CompactedSnapshots: 4},
		{DB: "/b.db", State: vfs.StateOK, LocalTXID: 5, ReplicatedTXID: 5, ForeignTxns: 4},
	}
}

func TestCollector(t *testing.T) {
	c := NewCollector(statuses)
	want := `
# HELP litestream_vfs_replication_lag_seconds Time since the oldest transaction not yet in the replica was captured (0 when caught up).
# TYPE litestream_vfs_replication_lag_seconds gauge
litestream_vfs_replication_lag_seconds{db="/a.db"} 1.5
litestream_vfs_replication_lag_seconds{db="/b.db"} 0
# HELP litestream_vfs_replicated_txid Last TXID durable in the replica.
# TYPE litestream_vfs_replicated_txid gauge
litestream_vfs_replicated_txid{db="/a.db"} 10
litestream_vfs_replicated_txid{db="/b.db"} 5
# HELP litestream_vfs_gate_wait_seconds_total Total time writers of this process waited there.
# TYPE litestream_vfs_gate_wait_seconds_total counter
litestream_vfs_gate_wait_seconds_total{db="/a.db"} 0.25
litestream_vfs_gate_wait_seconds_total{db="/b.db"} 0
# HELP litestream_vfs_foreign_transactions_total Transactions of writers without the extension found in the WAL and replicated.
# TYPE litestream_vfs_foreign_transactions_total counter
litestream_vfs_foreign_transactions_total{db="/a.db"} 0
litestream_vfs_foreign_transactions_total{db="/b.db"} 4
# HELP litestream_vfs_uploaded_bytes_total Bytes of the objects uploaded to the replica.
# TYPE litestream_vfs_uploaded_bytes_total counter
litestream_vfs_uploaded_bytes_total{db="/a.db"} 4096
litestream_vfs_uploaded_bytes_total{db="/b.db"} 0
# HELP litestream_vfs_spool_bytes Bytes of the local spool on disk (waiting for the replica, copies kept for compaction).
# TYPE litestream_vfs_spool_bytes gauge
litestream_vfs_spool_bytes{db="/a.db"} 65536
litestream_vfs_spool_bytes{db="/b.db"} 0
# HELP litestream_vfs_snapshots_total Full snapshots: read from the database (database) or built from the replica's files (compacted).
# TYPE litestream_vfs_snapshots_total counter
litestream_vfs_snapshots_total{db="/a.db",kind="compacted"} 4
litestream_vfs_snapshots_total{db="/a.db",kind="database"} 1
litestream_vfs_snapshots_total{db="/b.db",kind="compacted"} 0
litestream_vfs_snapshots_total{db="/b.db",kind="database"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"litestream_vfs_replication_lag_seconds", "litestream_vfs_replicated_txid", "litestream_vfs_gate_wait_seconds_total", "litestream_vfs_foreign_transactions_total",
		"litestream_vfs_uploaded_bytes_total", "litestream_vfs_spool_bytes", "litestream_vfs_snapshots_total"); err != nil {
		t.Error(err)
	}
	// One state gauge per state and database, 1 for the current one.
	if n := testutil.CollectAndCount(c, "litestream_vfs_state"); n != 2*len(States) {
		t.Errorf("%d state series, want %d", n, 2*len(States))
	}
	// Every kind of upload error has a series, 0 until the first.
	if n := testutil.CollectAndCount(c, "litestream_vfs_upload_errors_total"); n != 2*len(replicator.ErrKinds) {
		t.Errorf("%d upload error series, want %d", n, 2*len(replicator.ErrKinds))
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(""), "litestream_vfs_nonexistent"); err != nil {
		t.Error(err)
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", statuses, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`litestream_vfs_state{db="/a.db",state="behind"} 1`, `litestream_vfs_state{db="/a.db",state="ok"} 0`, `litestream_vfs_pending_bytes{db="/a.db"} 8192`,
		`litestream_vfs_upload_errors_total{db="/a.db",kind="network"} 3`, `litestream_vfs_upload_errors_total{db="/b.db",kind="network"} 0`,
		`litestream_vfs_compactions_total{db="/a.db"} 2`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}

	// A port that is taken: an error, not a crash.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Serve(ctx, ln.Addr().String(), statuses, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Serve on a taken port: %v, want a listen error", err)
	}
}
