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

	"github.com/litestream-vfs/litestream_vfs/vfs"
)

// States are the values of the state label, one gauge each (1 for the
// database's state, 0 for the others).
var States = []string{vfs.StateStarting, vfs.StateOK, vfs.StateBehind, vfs.StateError, vfs.StateNeedsSnapshot, vfs.StateNotReplicating, vfs.StateStopped}

// Source returns the status of every database replicated or opened in
// this process.
type Source func() []vfs.Status

type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(vfs.Status) float64
}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src     Source
	metrics []metric
	state   *prometheus.Desc
}

// NewCollector returns a collector of src's statuses.
func NewCollector(src Source) *Collector {
	m := func(name, help string, kind prometheus.ValueType, value func(vfs.Status) float64) metric {
		return metric{prometheus.NewDesc("litestream_vfs_"+name, help, []string{"db"}, nil), kind, value}
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
		},
		state: prometheus.NewDesc("litestream_vfs_state", "1 for the database's replication state, 0 for the others.", []string{"db", "state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	ch <- c.state
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src() {
		for _, m := range c.metrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st), st.DB)
		}
		for _, s := range States {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.DB, s)
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
