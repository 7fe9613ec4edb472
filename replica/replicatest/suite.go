package replicatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// RunClientTests runs the replica.Client conformance suite. newClient must
// return a client for a fresh, empty replica each time it is called.
func RunClientTests(t *testing.T, newClient func(t *testing.T) replica.Client) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, c replica.Client)
	}{
		{"Identity", testIdentity},
		{"EmptyReplica", testEmptyReplica},
		{"InvalidLevel", testInvalidLevel},
		{"WriteOpen", testWriteOpen},
		{"WriteLarge", testWriteLarge},
		{"List", testList},
		{"Ordering", testOrdering},
		{"LevelsIsolated", testLevelsIsolated},
		{"Overwrite", testOverwrite},
		{"OpenNotFound", testOpenNotFound},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"WriteReaderError", testWriteReaderError},
		{"WriteCancelled", testWriteCancelled},
		{"ConcurrentWrites", testConcurrentWrites},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newClient(t))
		})
	}
}

// payload returns deterministic bytes for a file of size n.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// write stores data at level/[minTXID, maxTXID] and checks the returned info.
func write(tb testing.TB, c replica.Client, level int, minTXID, maxTXID ltx.TXID, data []byte) *ltx.FileInfo {
	tb.Helper()
	info, err := c.WriteLTXFile(context.Background(), level, minTXID, maxTXID, bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("WriteLTXFile(%d, %s, %s): %v", level, minTXID, maxTXID, err)
	}
	if info == nil {
		tb.Fatalf("WriteLTXFile(%d, %s, %s) returned nil info", level, minTXID, maxTXID)
	}
	if info.Level != level || info.MinTXID != minTXID || info.MaxTXID != maxTXID {
		tb.Fatalf("WriteLTXFile info = level %d %s-%s, want level %d %s-%s",
			info.Level, info.MinTXID, info.MaxTXID, level, minTXID, maxTXID)
	}
	if got, want := info.Size, int64(len(data)); got != want {
		tb.Fatalf("WriteLTXFile info.Size=%d, want %d", got, want)
	}
	return info
}

// read returns the content of the file at level/[minTXID, maxTXID].
func read(tb testing.TB, c replica.Client, level int, minTXID, maxTXID ltx.TXID) []byte {
	tb.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID)
	if err != nil {
		tb.Fatalf("OpenLTXFile(%d, %s, %s): %v", level, minTXID, maxTXID, err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatalf("read %d/%s-%s: %v", level, minTXID, maxTXID, err)
	}
	return b
}

// list returns the files at level.
func list(tb testing.TB, c replica.Client, level int) []*ltx.FileInfo {
	tb.Helper()
	infos, err := c.LTXFiles(context.Background(), level)
	if err != nil {
		tb.Fatalf("LTXFiles(%d): %v", level, err)
	}
	return infos
}

// ranges formats the TXID ranges of infos for comparison.
func ranges(infos []*ltx.FileInfo) string {
	var b bytes.Buffer
	for i, info := range infos {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d-%d", info.MinTXID, info.MaxTXID)
	}
	return b.String()
}

func testIdentity(t *testing.T, c replica.Client) {
	if c.Type() == "" {
		t.Fatal("Type() is empty")
	}
	if c.String() == "" {
		t.Fatal("String() is empty")
	}
}

func testEmptyReplica(t *testing.T, c replica.Client) {
	for level := 0; level <= replica.MaxLevel; level++ {
		infos, err := c.LTXFiles(context.Background(), level)
		if err != nil {
			t.Fatalf("LTXFiles(%d): %v", level, err)
		}
		if len(infos) != 0 {
			t.Fatalf("LTXFiles(%d) = %s, want none", level, ranges(infos))
		}
	}
}

func testInvalidLevel(t *testing.T, c replica.Client) {
	ctx := context.Background()
	for _, level := range []int{-1, replica.MaxLevel + 1} {
		if _, err := c.LTXFiles(ctx, level); !errors.Is(err, replica.ErrInvalidLevel) {
			t.Fatalf("LTXFiles(%d) err=%v, want ErrInvalidLevel", level, err)
		}
		if _, err := c.WriteLTXFile(ctx, level, 1, 1, bytes.NewReader([]byte("x"))); !errors.Is(err, replica.ErrInvalidLevel) {
			t.Fatalf("WriteLTXFile(%d) err=%v, want ErrInvalidLevel", level, err)
		}
		if _, err := c.OpenLTXFile(ctx, level, 1, 1); !errors.Is(err, replica.ErrInvalidLevel) {
			t.Fatalf("OpenLTXFile(%d) err=%v, want ErrInvalidLevel", level, err)
		}
	}
}

func testWriteOpen(t *testing.T, c replica.Client) {
	want := payload(1, 4096)
	start := time.Now().Add(-time.Minute)
	write(t, c, 0, 1, 1, want)
	if got := read(t, c, 0, 1, 1); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(want))
	}
	infos := list(t, c, 0)
	if len(infos) != 1 {
		t.Fatalf("LTXFiles(0) = %s, want 1-1", ranges(infos))
	}
	if got, want := infos[0].Size, int64(len(want)); got != want {
		t.Fatalf("Size=%d, want %d", got, want)
	}
	if ts := infos[0].CreatedAt; ts.Before(start) || ts.After(time.Now().Add(time.Minute)) {
		t.Fatalf("CreatedAt=%s, want about now", ts)
	}
	if infos[0].Level != 0 {
		t.Fatalf("Level=%d, want 0", infos[0].Level)
	}
}

func testWriteLarge(t *testing.T, c replica.Client) {
	want := payload(2, 3<<20+17)
	write(t, c, replica.SnapshotLevel, 1, 100, want)
	if got := read(t, c, replica.SnapshotLevel, 1, 100); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(want))
	}
}

func testList(t *testing.T, c replica.Client) {
	type file struct {
		min, max ltx.TXID
		size     int
	}
	files := []file{{4, 4, 10}, {1, 1, 300}, {2, 3, 20}, {5, 9, 1}, {10, 10, 7}}
	for i, f := range files {
		write(t, c, 0, f.min, f.max, payload(uint64(i), f.size))
	}
	infos := list(t, c, 0)
	if got, want := ranges(infos), "1-1 2-3 4-4 5-9 10-10"; got != want {
		t.Fatalf("LTXFiles(0) = %s, want %s", got, want)
	}
	sizes := map[ltx.TXID]int64{1: 300, 2: 20, 4: 10, 5: 1, 10: 7}
	for _, info := range infos {
		if got, want := info.Size, sizes[info.MinTXID]; got != want {
			t.Fatalf("%s-%s Size=%d, want %d", info.MinTXID, info.MaxTXID, got, want)
		}
		if info.CreatedAt.IsZero() {
			t.Fatalf("%s-%s CreatedAt is zero", info.MinTXID, info.MaxTXID)
		}
		if info.Level != 0 {
			t.Fatalf("%s-%s Level=%d, want 0", info.MinTXID, info.MaxTXID, info.Level)
		}
	}
}

func testOrdering(t *testing.T, c replica.Client) {
	// Fixed-width hex names sort like numbers; same MinTXID sorts by MaxTXID.
	for _, r := range [][2]ltx.TXID{{0x10, 0x10}, {1, 0x20}, {9, 9}, {1, 5}, {0xa, 0xf}, {1 << 40, 1<<40 + 1}} {
		write(t, c, 1, r[0], r[1], []byte("x"))
	}
	if got, want := ranges(list(t, c, 1)), "1-5 1-32 9-9 10-15 16-16 1099511627776-1099511627777"; got != want {
		t.Fatalf("LTXFiles(1) = %s, want %s", got, want)
	}
}

func testLevelsIsolated(t *testing.T, c replica.Client) {
	write(t, c, 0, 1, 1, []byte("level0"))
	write(t, c, replica.SnapshotLevel, 1, 1, []byte("level9"))
	for level := 1; level < replica.SnapshotLevel; level++ {
		if infos := list(t, c, level); len(infos) != 0 {
			t.Fatalf("LTXFiles(%d) = %s, want none", level, ranges(infos))
		}
	}
	if got, want := string(read(t, c, 0, 1, 1)), "level0"; got != want {
		t.Fatalf("level 0 content %q, want %q", got, want)
	}
	if got, want := string(read(t, c, replica.SnapshotLevel, 1, 1)), "level9"; got != want {
		t.Fatalf("level 9 content %q, want %q", got, want)
	}
}

func testOverwrite(t *testing.T, c replica.Client) {
	write(t, c, 0, 3, 3, []byte("first version"))
	write(t, c, 0, 3, 3, []byte("second"))
	if got, want := string(read(t, c, 0, 3, 3)), "second"; got != want {
		t.Fatalf("content %q, want %q", got, want)
	}
	infos := list(t, c, 0)
	if got, want := ranges(infos), "3-3"; got != want {
		t.Fatalf("LTXFiles(0) = %s, want %s", got, want)
	}
	if got, want := infos[0].Size, int64(len("second")); got != want {
		t.Fatalf("Size=%d, want %d", got, want)
	}
}

func testOpenNotFound(t *testing.T, c replica.Client) {
	ctx := context.Background()
	if _, err := c.OpenLTXFile(ctx, 0, 1, 1); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("OpenLTXFile on empty replica err=%v, want ErrNotFound", err)
	}
	write(t, c, 0, 1, 2, []byte("x"))
	for _, r := range [][2]ltx.TXID{{1, 1}, {2, 2}, {1, 3}} {
		if _, err := c.OpenLTXFile(ctx, 0, r[0], r[1]); !errors.Is(err, replica.ErrNotFound) {
			t.Fatalf("OpenLTXFile(0, %d, %d) err=%v, want ErrNotFound", r[0], r[1], err)
		}
	}
	if _, err := c.OpenLTXFile(ctx, 1, 1, 2); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("OpenLTXFile at another level err=%v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, c replica.Client) {
	ctx := context.Background()
	var infos []*ltx.FileInfo
	for txid := ltx.TXID(1); txid <= 4; txid++ {
		infos = append(infos, write(t, c, 0, txid, txid, []byte("x")))
	}
	if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{infos[0], infos[2]}); err != nil {
		t.Fatalf("DeleteLTXFiles: %v", err)
	}
	if got, want := ranges(list(t, c, 0)), "2-2 4-4"; got != want {
		t.Fatalf("LTXFiles(0) after delete = %s, want %s", got, want)
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 1); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("OpenLTXFile of deleted file err=%v, want ErrNotFound", err)
	}
	if err := c.DeleteLTXFiles(ctx, nil); err != nil {
		t.Fatalf("DeleteLTXFiles(nil): %v", err)
	}
}

func testDeleteMissing(t *testing.T, c replica.Client) {
	ctx := context.Background()
	write(t, c, 0, 2, 2, []byte("x"))
	missing := []*ltx.FileInfo{
		{Level: 0, MinTXID: 1, MaxTXID: 1},
		{Level: 0, MinTXID: 2, MaxTXID: 2},
		{Level: 5, MinTXID: 7, MaxTXID: 8},
	}
	if err := c.DeleteLTXFiles(ctx, missing); err != nil {
		t.Fatalf("DeleteLTXFiles with missing files: %v", err)
	}
	if err := c.DeleteLTXFiles(ctx, missing); err != nil {
		t.Fatalf("DeleteLTXFiles again: %v", err)
	}
	if infos := list(t, c, 0); len(infos) != 0 {
		t.Fatalf("LTXFiles(0) = %s, want none", ranges(infos))
	}
}

// failingReader returns n bytes then an error.
type failingReader struct{ n int }

var errInjected = errors.New("injected read error")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errInjected
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func testWriteReaderError(t *testing.T, c replica.Client) {
	ctx := context.Background()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, &failingReader{n: 1000}); !errors.Is(err, errInjected) {
		t.Fatalf("WriteLTXFile with failing reader err=%v, want the reader's error", err)
	}
	if infos := list(t, c, 0); len(infos) != 0 {
		t.Fatalf("LTXFiles(0) = %s after failed write, want none", ranges(infos))
	}
	if _, err := c.OpenLTXFile(ctx, 0, 1, 1); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("OpenLTXFile after failed write err=%v, want ErrNotFound", err)
	}

	// A failed overwrite leaves the previous content in place.
	write(t, c, 0, 2, 2, []byte("kept"))
	if _, err := c.WriteLTXFile(ctx, 0, 2, 2, &failingReader{n: 10}); err == nil {
		t.Fatal("WriteLTXFile with failing reader succeeded")
	}
	if got, want := string(read(t, c, 0, 2, 2)), "kept"; got != want {
		t.Fatalf("content after failed overwrite %q, want %q", got, want)
	}
}

func testWriteCancelled(t *testing.T, c replica.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader([]byte("x"))); err == nil {
		t.Fatal("WriteLTXFile with cancelled context succeeded")
	}
	if infos := list(t, c, 0); len(infos) != 0 {
		t.Fatalf("LTXFiles(0) = %s after cancelled write, want none", ranges(infos))
	}
}

func testConcurrentWrites(t *testing.T, c replica.Client) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		txid := ltx.TXID(i + 1)
		// Two writers per range with identical content, as a retry would.
		for j := range 2 {
			wg.Go(func() {
				_, errs[2*i+j] = c.WriteLTXFile(context.Background(), 0, txid, txid, bytes.NewReader(payload(uint64(txid), 64<<10)))
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent WriteLTXFile: %v", err)
	}
	infos := list(t, c, 0)
	if got, want := len(infos), n; got != want {
		t.Fatalf("LTXFiles(0) = %d files (%s), want %d", got, ranges(infos), want)
	}
	for i, info := range infos {
		if got, want := info.MinTXID, ltx.TXID(i+1); got != want {
			t.Fatalf("file %d MinTXID=%s, want %s", i, got, want)
		}
		if got := read(t, c, 0, info.MinTXID, info.MaxTXID); !bytes.Equal(got, payload(uint64(info.MinTXID), 64<<10)) {
			t.Fatalf("file %s content differs from what was written", info.MinTXID)
		}
	}
}
