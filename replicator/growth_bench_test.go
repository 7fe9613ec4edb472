package replicator

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// requestCounter is a remote-like client (as S3: no free local checks, so
// local copies are kept) that counts PUTs, GETs by level and deleted
// objects.
type requestCounter struct {
	replica.Client
	mu           sync.Mutex
	puts, delete int
	gets         map[int]int
}

func (c *requestCounter) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
}

func (c *requestCounter) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
	c.mu.Lock()
	if c.gets == nil {
		c.gets = map[int]int{}
	}
	c.gets[level]++
	c.mu.Unlock()
	return c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID)
}

func (c *requestCounter) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	c.mu.Lock()
	c.delete += len(files)
	c.mu.Unlock()
	return c.Client.DeleteLTXFiles(ctx, files)
}

// BenchmarkReplicaDay (issue 11): a simulated day (BENCH_SIM_HOURS,
// default 24) of steady writes at 1, 100 and 1000 transactions a second,
// through the real replicator, compactor and retention with the default
// schedule, on a fake clock, against a directory replica that counts
// requests as S3 would see them. Each simulated second ships
// min(rate, 10) level-0 files (the default S3 cap of 10 PUTs a second
// batches the rest); a transaction changes one 512-byte page of a
// 200-page database (incompressible content), 80% of them among the 8
// pages at its end (appends) and 20% anywhere. Reported per run: PUTs,
// GETs and deletions per hour over the day, and the replica's objects and
// bytes at its end.
func BenchmarkReplicaDay(b *testing.B) {
	hours := 24
	if v := os.Getenv("BENCH_SIM_HOURS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_SIM_HOURS=%q: want a positive integer", v)
		}
		hours = n
	}
	for _, rate := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("txn_per_s=%d", rate), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				replicaDay(b, rate, time.Duration(hours)*time.Hour)
			}
		})
	}
}

func replicaDay(b *testing.B, rate int, span time.Duration) {
	var counter *requestCounter
	s := newSimOn(b, compact.Defaults(), func(dir string) replica.Client {
		counter = &requestCounter{Client: file.NewClient(dir)}
		return counter
	})
	const dbPages = 200
	m := s.m
	m.change(dbPages)
	for pg := uint32(1); pg < dbPages; pg++ {
		m.change(pg)
	}
	txid, err := s.r.Snapshot(512, m.commit(), m.read, nil, s.clock.Now())
	if err != nil {
		b.Fatal(err)
	}
	s.waitFor(txid)
	uploads := min(rate, 10)
	for elapsed := time.Duration(0); elapsed < span; elapsed += time.Second {
		for u := 0; u < uploads; u++ {
			var pgnos []uint32
			for n := 0; n < rate/uploads; n++ {
				if m.rnd.Intn(5) == 0 {
					pgnos = append(pgnos, uint32(1+m.rnd.Intn(dbPages)))
				} else {
					pgnos = append(pgnos, uint32(dbPages-7+m.rnd.Intn(8)))
				}
			}
			if txid, err = s.r.Append(1, 512, m.commit(), m.change(pgnos...), m.read, nil, s.clock.Now()); err != nil {
				b.Fatal(err)
			}
			s.waitFor(txid)
		}
		s.advance(time.Second)
	}
	st := s.r.Status()
	h := span.Hours()
	counter.mu.Lock()
	puts, deletes, gets := counter.puts, counter.delete, 0
	for _, n := range counter.gets {
		gets += n
	}
	counter.mu.Unlock()
	b.ReportMetric(float64(puts)/h, "puts/h")
	b.ReportMetric(float64(gets)/h, "gets/h")
	b.ReportMetric(float64(deletes)/h, "deletes/h")
	b.ReportMetric(float64(st.ReplicaFiles), "objects")
	b.ReportMetric(float64(st.ReplicaBytes)/(1<<20), "replica_MiB")
	b.ReportMetric(float64(st.Snapshots), "snapshots")
	lv, _ := s.r.cat.levels()
	b.Logf("rate %d txn/s, %v: files by level %v %v %v %v snapshots %d; database %d bytes", rate, span,
		len(lv[0]), len(lv[1]), len(lv[2]), len(lv[3]), len(lv[9]), s.r.dbBytes.Load())
}
