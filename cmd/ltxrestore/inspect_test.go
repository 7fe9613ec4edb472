package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/superfly/ltx"
)

// t1 is the commit time stamped on TXID 1 by stampedFixture; TXID 2 is
// stamped one second later.
var t1 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// restamp rewrites the LTX file at level covering txid..txid in dir with
// header timestamp ts, keeping its pages and checksums.
func restamp(t *testing.T, dir string, level int, txid ltx.TXID, ts time.Time) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(replica.LTXFilePath(level, txid, txid)))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := ltx.NewDecoder(bytes.NewReader(data))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatal(err)
	}
	hdr := dec.Header()
	pages := make(map[uint32][]byte)
	for {
		var ph ltx.PageHeader
		buf := make([]byte, hdr.PageSize)
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pages[ph.Pgno] = buf
	}
	if err := dec.Close(); err != nil {
		t.Fatal(err)
	}
	hdr.Timestamp = ts.UnixMilli()
	if err := os.WriteFile(path, replicatest.EncodeLTX(t, hdr, pages, dec.Trailer().PostApplyChecksum), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stampedFixture is newSQLiteFixture with TXID 1 committed at t1 and
// TXID 2 one second later.
func stampedFixture(t *testing.T) *sqliteFixture {
	t.Helper()
	fx := newSQLiteFixture(t)
	restamp(t, fx.dir, 0, 1, t1)
	restamp(t, fx.dir, 0, 2, t1.Add(time.Second))
	return fx
}

// ltxPath returns the path of an LTX file in the replica at dir.
func ltxPath(dir string, level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(dir, filepath.FromSlash(replica.LTXFilePath(level, minTXID, maxTXID)))
}

func TestCLITimestamp(t *testing.T) {
	fx := stampedFixture(t)
	tests := []struct {
		name     string
		ts       string
		extra    []string
		wantCode int
		wantTXID ltx.TXID
		wantErr  []string
	}{
		{name: "ExactFirst", ts: "2024-05-01T12:00:00Z", wantTXID: 1, wantErr: []string{"restored TXID 1 (0x0000000000000001) (committed at 2024-05-01T12:00:00.000Z)"}},
		{name: "Between", ts: "2024-05-01T12:00:00.999Z", wantTXID: 1},
		{name: "ExactSecond", ts: "2024-05-01T12:00:01Z", wantTXID: 2},
		{name: "OtherZone", ts: "2024-05-01T14:00:01+02:00", wantTXID: 2},
		{name: "LowerCase", ts: "2024-05-01t12:00:01z", wantTXID: 2}, // RFC 3339 §5.6 allows t and z
		{name: "AfterLast", ts: "2030-01-01T00:00:00Z", wantTXID: 2},
		{
			name: "BeforeFirst", ts: "2024-05-01T11:59:59.999Z", wantCode: 1,
			wantErr: []string{"ltxrestore: timestamp before first restorable state: 2024-05-01T11:59:59.999Z", "txid 0000000000000001 (1) at 2024-05-01T12:00:00Z"},
		},
		{name: "Malformed", ts: "2024-05-01 12:00", wantCode: 2, wantErr: []string{`invalid -timestamp "2024-05-01 12:00"`}},
		{name: "NoZone", ts: "2024-05-01T12:00:00", wantCode: 2, wantErr: []string{"invalid -timestamp"}},
		{name: "WithTXID", ts: "2024-05-01T12:00:00Z", extra: []string{"-txid", "1"}, wantCode: 2, wantErr: []string{"-txid and -timestamp are mutually exclusive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.db")
			args := append([]string{"-timestamp", tt.ts, "-o", out}, tt.extra...)
			r := runBinary(t, append(args, fx.dir)...)
			if r.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q, want it to contain %q", r.stderr, s)
				}
			}
			if tt.wantCode == 1 {
				if got := strings.Count(r.stderr, "\n"); got != 1 {
					t.Errorf("stderr has %d lines, want 1:\n%s", got, r.stderr)
				}
			}
			got, err := os.ReadFile(out)
			if tt.wantCode != 0 {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("OUT exists after failure (err=%v)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, fx.images[tt.wantTXID]) {
				t.Fatalf("OUT differs from the database at TXID %d", tt.wantTXID)
			}
		})
	}
}

func TestCLILs(t *testing.T) {
	fx := stampedFixture(t)
	fi1, err := os.Stat(ltxPath(fx.dir, 0, 1, 1))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Text", func(t *testing.T) {
		r := runBinary(t, "ls", fx.dir)
		if r.code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 5 {
			t.Fatalf("%d lines, want 5:\n%s", len(lines), r.stdout)
		}
		if got, want := lines[4], "  2 points at the ends of level-0 files: txid 1 (2024-05-01T12:00:00.000Z) to txid 2 (2024-05-01T12:00:01.000Z)"; got != want {
			t.Fatalf("granularity line %q, want %q", got, want)
		}
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "LEVEL MIN_TXID MAX_TXID MIN MAX TIMESTAMP SIZE" {
			t.Fatalf("header %q", lines[0])
		}
		want := []string{"0", "0000000000000001", "0000000000000001", "1", "1", "2024-05-01T12:00:00.000Z"}
		if got := strings.Fields(lines[1]); strings.Join(got[:6], " ") != strings.Join(want, " ") || got[6] != itoa(fi1.Size()) {
			t.Fatalf("row %q, want %v %d", lines[1], want, fi1.Size())
		}
		if got, want := strings.Index(lines[1], "2024"), strings.Index(lines[0], "TIMESTAMP"); got != want {
			t.Fatalf("timestamp at column %d, header at %d: not aligned\n%s", got, want, r.stdout)
		}
		if !strings.Contains(lines[2], "2024-05-01T12:00:01.000Z") {
			t.Fatalf("row %q, want TXID 2's timestamp", lines[2])
		}
		if got, want := lines[3], "restorable: txid 1 (0000000000000001) at 2024-05-01T12:00:00.000Z to txid 2 (0000000000000002) at 2024-05-01T12:00:01.000Z"; got != want {
			t.Fatalf("last line %q, want %q", got, want)
		}
	})

	t.Run("JSON", func(t *testing.T) {
		r := runBinary(t, "ls", "-json", fx.dir)
		if r.code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		var out lsOutput
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("decode %q: %v", r.stdout, err)
		}
		if len(out.Files) != 2 {
			t.Fatalf("%d files, want 2", len(out.Files))
		}
		want := lsFile{Level: 0, MinTXID: 1, MaxTXID: 1, MinTXIDHex: "0000000000000001", MaxTXIDHex: "0000000000000001",
			Timestamp: "2024-05-01T12:00:00.000Z", Size: fi1.Size(), Path: "ltx/0/0000000000000001-0000000000000001.ltx"}
		if out.Files[0] != want {
			t.Fatalf("file 0 = %+v, want %+v", out.Files[0], want)
		}
		wantR := lsRestorable{FirstTXID: 1, FirstTime: "2024-05-01T12:00:00.000Z", LastTXID: 2, LastTime: "2024-05-01T12:00:01.000Z"}
		if out.Restorable == nil || *out.Restorable != wantR {
			t.Fatalf("restorable = %+v, want %+v", out.Restorable, wantR)
		}
		// Field names as documented.
		for _, key := range []string{`"files"`, `"restorable"`, `"first_txid"`, `"first_time"`, `"last_txid"`, `"last_time"`, `"timestamp"`, `"size"`} {
			if !strings.Contains(r.stdout, key) {
				t.Fatalf("output lacks %s:\n%s", key, r.stdout)
			}
		}
	})

	t.Run("Missing", func(t *testing.T) {
		r := runBinary(t, "ls", filepath.Join(fx.dir, "nope"))
		if r.code != 1 || !strings.Contains(r.stderr, "replica has no ltx files") || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("exit %d, stderr %q; want 1 and one line naming the empty replica", r.code, r.stderr)
		}
	})

	t.Run("Usage", func(t *testing.T) {
		if r := runBinary(t, "ls"); r.code != 2 || !strings.Contains(r.stderr, "replica URL required") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestCLIVerify(t *testing.T) {
	tests := []struct {
		name     string
		replica  func(t *testing.T) string
		wantCode int
		last     string
		want     []string // lines of stdout that must appear (substrings)
	}{
		{
			name:    "Good",
			replica: func(t *testing.T) string { return newSQLiteFixture(t).dir },
			last:    "ok: latest restorable TXID 2",
			want:    []string{"checked 2 files", "restore chain (2 files): ltx/0/0000000000000001-0000000000000001.ltx ltx/0/0000000000000002-0000000000000002.ltx"},
		},
		{
			name:     "Gap",
			replica:  gapReplica,
			wantCode: 1, last: "FAILED: 1 problems",
			want: []string{
				"gap: level 0: txids 0000000000000002-0000000000000002 (2-2) missing between ltx/0/0000000000000001-0000000000000001.ltx and ltx/0/0000000000000003-0000000000000003.ltx",
				"problem: txid gap after 0000000000000001",
			},
		},
		{
			name: "Corrupt",
			replica: func(t *testing.T) string {
				fx := newSQLiteFixture(t)
				path := ltxPath(fx.dir, 0, 2, 2)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-1] ^= 0xff
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return fx.dir
			},
			wantCode: 1, last: "FAILED: 1 problems",
			want: []string{"problem: checksum mismatch: ltx/0/0000000000000002-0000000000000002.ltx"},
		},
		{
			name: "Truncated",
			replica: func(t *testing.T) string {
				fx := newSQLiteFixture(t)
				path := ltxPath(fx.dir, 0, 1, 1)
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(path, fi.Size()/2); err != nil {
					t.Fatal(err)
				}
				return fx.dir
			},
			wantCode: 1, last: "FAILED: 1 problems",
			want: []string{"problem: invalid ltx file: ltx/0/0000000000000001-0000000000000001.ltx", "unexpected EOF"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runBinary(t, "verify", tt.replica(t))
			if r.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stdout:\n%s\nstderr:\n%s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if got := lines[len(lines)-1]; got != tt.last {
				t.Fatalf("last line %q, want %q\n%s", got, tt.last, r.stdout)
			}
			for _, s := range tt.want {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
		})
	}
	t.Run("Missing", func(t *testing.T) {
		r := runBinary(t, "verify", filepath.Join(t.TempDir(), "nope"))
		if r.code != 1 || !strings.Contains(r.stderr, "replica has no ltx files") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
