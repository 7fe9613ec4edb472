package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

// countingClient records how many files are open at once and how many
// downloaded files sit in dir whenever one is opened.
type countingClient struct {
	replica.Client
	dir  string             // the output's directory
	fail map[ltx.TXID]error // OpenLTXFile errors by MinTXID

	mu       sync.Mutex
	open     int
	maxOpen  int
	maxTemps int
}

func (c *countingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
	if err := c.fail[minTXID]; err != nil {
		return nil, err
	}
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID)
	if err != nil {
		return nil, err
	}
	temps, _ := filepath.Glob(filepath.Join(c.dir, "*.tmp-*.ltx"))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open++
	c.maxOpen = max(c.maxOpen, c.open)
	c.maxTemps = max(c.maxTemps, len(temps))
	return &countingCloser{ReadCloser: rc, c: c}, nil
}

type countingCloser struct {
	io.ReadCloser
	c    *countingClient
	once sync.Once
}

func (r *countingCloser) Close() error {
	r.once.Do(func() {
		r.c.mu.Lock()
		r.c.open--
		r.c.mu.Unlock()
	})
	return r.ReadCloser.Close()
}

// manyTxs returns a snapshot-writing first transaction followed by n-1
// small ones.
func manyTxs(n int) []tx {
	txs := []tx{full(8)}
	for i := 1; i < n; i++ {
		txs = append(txs, tx{uint32(8 + i%3), []uint32{uint32(1 + i%8), uint32(8 + i%3)}})
	}
	return txs
}

// assertOnly fails unless dir holds exactly names.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

func TestRestoreParallelism(t *testing.T) {
	const n = 40
	h := newHistory(t, 4096, manyTxs(n)...)
	fc := newReplica(t)
	h.putL0(t, fc, 1, n)
	var first []byte
	for _, p := range []int{1, 2, 8, 64} {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			c := &countingClient{Client: fc, dir: dir}
			res, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out, Parallelism: p})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(res.Files), n; got != want {
				t.Fatalf("applied %d files, want %d", got, want)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, h.images[n]) {
				t.Fatalf("parallelism %d: output differs from the database at TXID %d", p, n)
			}
			if first == nil {
				first = got
			} else if !bytes.Equal(got, first) {
				t.Fatalf("parallelism %d: output differs from parallelism 1", p)
			}
			if c.maxOpen > p {
				t.Errorf("%d files open at once, want at most %d", c.maxOpen, p)
			}
			if c.maxTemps > p {
				t.Errorf("%d downloaded files at once, want at most %d", c.maxTemps, p)
			}
			assertOnly(t, dir, "out.db")
		})
	}
}

func TestRestoreParallelFailure(t *testing.T) {
	const n = 30
	h := newHistory(t, 4096, manyTxs(n)...)
	errBackend := errors.New("backend down")
	tests := []struct {
		name  string
		setup func(t *testing.T, c replica.Client) map[ltx.TXID]error
		want  error
		msg   string
	}{
		{
			name: "CorruptFile",
			setup: func(t *testing.T, c replica.Client) map[ltx.TXID]error {
				h.putL0(t, c, 1, 9)
				put(t, c, 0, flipByte(h.files[10], ltx.HeaderSize+ltx.PageHeaderSize+4+1000))
				h.putL0(t, c, 11, n)
				return nil
			},
			want: restore.ErrChecksumMismatch, msg: "ltx/0/000000000000000a-000000000000000a.ltx",
		},
		{
			name: "OpenFails",
			setup: func(t *testing.T, c replica.Client) map[ltx.TXID]error {
				h.putL0(t, c, 1, n)
				return map[ltx.TXID]error{12: errBackend}
			},
			want: errBackend, msg: "open ltx/0/000000000000000c-000000000000000c.ltx: backend down",
		},
		{
			name: "FirstFails",
			setup: func(t *testing.T, c replica.Client) map[ltx.TXID]error {
				h.putL0(t, c, 1, n)
				return map[ltx.TXID]error{1: errBackend}
			},
			want: errBackend, msg: "open ltx/0/0000000000000001-0000000000000001.ltx",
		},
	}
	for _, tt := range tests {
		for _, p := range []int{1, 8} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, p), func(t *testing.T) {
				fc := newReplica(t)
				dir := t.TempDir()
				c := &countingClient{Client: fc, dir: dir, fail: tt.setup(t, fc)}
				out := filepath.Join(dir, "out.db")
				_, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out, Parallelism: p})
				if !errors.Is(err, tt.want) {
					t.Fatalf("Restore err=%v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("Restore err=%q, want it to contain %q", err, tt.msg)
				}
				assertOnly(t, dir)
			})
		}
	}
}

func TestRestoreParallelismInvalid(t *testing.T) {
	h := newHistory(t, 4096, full(4))
	c := newReplica(t)
	h.putL0(t, c, 1, 1)
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out, Parallelism: -1}); err == nil {
		t.Fatal("Restore with parallelism -1 succeeded")
	}
	assertNoOutput(t, out)
}
