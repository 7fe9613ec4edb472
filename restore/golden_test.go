package restore_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

var update = flag.Bool("update", false, "rewrite testdata fixtures")

// goldenDir is a small replica: a snapshot at TXID 2 (level 9), level-0
// files 1..4 (4 shrinks the database), and the expected image.
const goldenDir = "testdata/basic"

// goldenSnapshot is the snapshot file in goldenDir, also the fuzz seed.
var goldenSnapshot = filepath.Join(goldenDir, "replica", "ltx", "9", ltx.FormatFilename(1, 2))

// writeGolden regenerates goldenDir.
func writeGolden(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(goldenDir); err != nil {
		t.Fatal(err)
	}
	c := file.NewClient(filepath.Join(goldenDir, "replica"))
	db := replicatest.NewDB(512)
	replicatest.WriteFile(t, c, 0, db.Tx(t, 3, db.Pages(1, 1, 2, 3)))
	replicatest.WriteFile(t, c, 0, db.Tx(t, 5, db.Pages(2, 2, 5)))
	replicatest.WriteFile(t, c, 9, db.Snapshot(t))
	replicatest.WriteFile(t, c, 0, db.Tx(t, 5, db.Pages(3, 1)))
	replicatest.WriteFile(t, c, 0, db.Tx(t, 2, db.Pages(4, 2)))
	if err := os.WriteFile(filepath.Join(goldenDir, "want.db"), db.Image(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreGolden(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	want, err := os.ReadFile(filepath.Join(goldenDir, "want.db"))
	if err != nil {
		t.Fatalf("read golden image (run with -update to create): %v", err)
	}
	out := filepath.Join(t.TempDir(), "out.db")
	res, err := restore.Restore(context.Background(), file.NewClient(filepath.Join(goldenDir, "replica")), restore.Options{OutputPath: out})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("restored database differs from testdata/basic/want.db")
	}
	if got, want := len(res.Files), 3; got != want {
		t.Fatalf("applied %d files (%v), want %d (snapshot, 3, 4)", got, res.Files, want)
	}
}

// FuzzRestoreLTX mutates a single-snapshot replica's only file: Restore
// must return an error or a database whose checksum matches, never panic,
// and never leave a temporary file or a partial output.
func FuzzRestoreLTX(f *testing.F) {
	seed, err := os.ReadFile(goldenSnapshot)
	if err != nil {
		f.Fatalf("read seed (run TestRestoreGolden -update): %v", err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(seed[:ltx.HeaderSize])
	db := replicatest.NewDB(4096)
	db.Tx(f, 3, db.Pages(1, 1, 2, 3))
	db.Tx(f, 2, db.Pages(2, 1))
	f.Add(db.Snapshot(f))
	db.NoChecksum = true
	f.Add(db.Snapshot(f))

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		c := file.NewClient(filepath.Join(dir, "replica"))
		var hdr ltx.Header
		maxTXID := ltx.TXID(2)
		if hdr.UnmarshalBinary(data) == nil && hdr.MaxTXID > 0 {
			maxTXID = hdr.MaxTXID // name it as its header says, to get past that check
		}
		// Plain writes: the client's fsyncs would dominate the fuzzer's time.
		levelDir := filepath.Join(c.Dir(), "ltx", "9")
		if err := os.MkdirAll(levelDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(levelDir, ltx.FormatFilename(1, maxTXID)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out.db")
		res, err := restore.Restore(context.Background(), c, restore.Options{OutputPath: out})
		if matches, _ := filepath.Glob(out + "*"); err != nil && len(matches) > 0 {
			t.Fatalf("Restore failed (%v) but left %v", err, matches)
		}
		if err != nil {
			if errors.Is(err, restore.ErrOutputExists) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if matches, _ := filepath.Glob(out + ".tmp-*"); len(matches) > 0 {
			t.Fatalf("temporary files left behind: %v", matches)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(b), int(res.Pages)*int(res.PageSize); got != want {
			t.Fatalf("output is %d bytes, Result says %d", got, want)
		}
		if !res.ChecksumsVerified {
			return // HeaderFlagNoChecksum: nothing to compare with
		}
		sum, err := ltx.ChecksumReader(bytes.NewReader(b), int(res.PageSize))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			sum = ltx.ChecksumFlag
		}
		if sum != res.PostApplyChecksum {
			t.Fatalf("output checksum %s, Result says %s", sum, res.PostApplyChecksum)
		}
	})
}
