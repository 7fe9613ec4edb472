//go:build !nometrics

// Package metrics exposes the replication status of every database the
// extension replicates as Prometheus metrics (LITESTREAM_METRICS_ADDR). It
// reads vfs.Status at each scrape: nothing is counted on the commit path.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/litestream-vfs/litestream_vfs/replicator"
	"github.com/litestream-vfs/litestream_vfs/vfs"
)

// States are the values of the state label, one gauge each (1 for the
// database's state, 0 for the others).
var States = []string{vfs.StateStarting, vfs.StateOK, vfs.StateBehind, vfs.StateError, vfs.StateNeedsSnapshot, vfs.StateNotReplicating, vfs.StateDegraded, vfs.StateStopped}

// Source returns the status of every database replicated or opened in
// this process.
type Source func() []vfs.Status

type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(vfs.Status) float64
}

// labelled is a metric with one more label than db, a series for each of
// its values (all of them, so that a rate() sees a series before its
// first increment).
type labelled struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	values []string
	value  func(vfs.Status, string) float64
}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src      Source
	metrics  []metric
	labelled []labelled
}

// NewCollector returns a collector of src's statuses.
func NewCollector(src Source) *Collector {
	m := func(name, help string, kind prometheus.ValueType, value func(vfs.Status) float64) metric {
		return metric{prometheus.NewDesc("litestream_vfs_"+name, help, []string{"db"}, nil), kind, value}
	}
	l := func(name, help string, kind prometheus.ValueType, label string, values []string, value func(vfs.Status, string) float64) labelled {
		return labelled{prometheus.NewDesc("litestream_vfs_"+name, help, []string{"db", label}, nil), kind, values, value}
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return &Collector{
		src: src,
		metrics: []metric{
			m("replication_lag_seconds", "Time since the oldest transaction not yet in the replica was captured (0 when caught up).", g,
				func(s vfs.Status) float64 { return float64(s.LagMS) / 1000 }),
			m("local_txid", "Last TXID committed locally.", g, func(s vfs.Status) float64 { return float64(s.LocalTXID) }),
			m("replicated_txid", "Last TXID durable in the replica.", g, func(s vfs.Status) float64 { return float64(s.ReplicatedTXID) }),
			m("pending_transactions", "Transactions not yet in the replica.", g, func(s vfs.Status) float64 { return float64(s.PendingTxns) }),
			m("pending_bytes", "Spooled bytes not yet in the replica.", g, func(s vfs.Status) float64 { return float64(s.PendingBytes) }),
			m("uploads_total", "Objects written to the replica since the extension loaded.", c, func(s vfs.Status) float64 { return float64(s.Uploads) }),
			m("commits_total", "Commits this process observed.", c, func(s vfs.Status) float64 { return float64(s.Commits) }),
			m("gate_waits_total", "Times a writer of this process waited before a WAL reset for capture to catch up.", c,
				func(s vfs.Status) float64 { return float64(s.GateWaits) }),
			m("gate_wait_seconds_total", "Total time writers of this process waited there.", c, func(s vfs.Status) float64 { return s.GateWaitMS / 1000 }),
			m("foreign_transactions_total", "Transactions of writers without the extension found in the WAL and replicated.", c,
				func(s vfs.Status) float64 { return float64(max(s.ForeignTxns, 0)) }),
			m("uploaded_bytes_total", "Bytes of the objects uploaded to the replica.", c, func(s vfs.Status) float64 { return float64(s.UploadedBytes) }),
			m("spool_bytes", "Bytes of the local spool on disk (waiting for the replica, copies kept for compaction).", g,
				func(s vfs.Status) float64 { return float64(s.SpoolBytes) }),
			m("compactions_total", "Files written by compaction.", c, func(s vfs.Status) float64 { return float64(s.Compactions) }),
			m("sync_waits_total", "replicate=sync commits of this process that waited for the replica.", c,
				func(s vfs.Status) float64 { return float64(s.SyncWaits) }),
			m("sync_wait_seconds_total", "Total time they waited.", c, func(s vfs.Status) float64 { return s.SyncWaitMS / 1000 }),
			m("sync_timeouts_total", "replicate=sync commits the replica did not confirm within sync-timeout.", c,
				func(s vfs.Status) float64 { return float64(s.SyncTimeouts) }),
		},
		labelled: []labelled{
			l("state", "1 for the database's replication state, 0 for the others.", g, "state", States,
				func(s vfs.Status, v string) float64 { return b2f(s.State == v) }),
			l("upload_errors_total", "Failed attempts to reach the store, by kind.", c, "kind", replicator.ErrKinds,
				func(s vfs.Status, v string) float64 { return float64(s.UploadErrors[v]) }),
			l("snapshots_total", "Full snapshots: read from the database (database) or built from the replica's files (compacted).", c, "kind", []string{"database", "compacted"},
				func(s vfs.Status, v string) float64 {
					if v == "database" {
						return float64(s.Snapshots)
					}
					return float64(s.CompactedSnapshots)
				}),
		},
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	for _, m := range c.labelled {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src() {
		for _, m := range c.metrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st), st.DB)
		}
		for _, m := range c.labelled {
			for _, v := range m.values {
				ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st, v), st.DB, v)
			}
		}
	}
}

// Serve listens on addr and serves /metrics for src until ctx ends. It
// returns the address listened on once the listener is up, or why it is
// not (the caller logs and goes on: the host process must not fail over a
// port that is taken).
func Serve(ctx context.Context, addr string, src Source, logger *slog.Logger) (string, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(src)); err != nil {
		return "", fmt.Errorf("metrics: register: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("metrics endpoint stopped", "addr", addr, "err", err)
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return ln.Addr().String(), nil
}
