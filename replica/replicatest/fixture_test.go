package replicatest_test

import (
	"bytes"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/replicatest"
	"github.com/superfly/ltx"
)

// TestDBChecksum checks the incremental checksum against a full pass over
// the image, through growth, writes and shrinks, and that every file the
// DB produces decodes and verifies.
func TestDBChecksum(t *testing.T) {
	for _, pageSize := range []uint32{512, 4096} {
		db := replicatest.NewDB(pageSize)
		steps := []struct {
			commit uint32
			pgnos  []uint32
		}{{3, []uint32{1, 2}}, {3, []uint32{3}}, {8, []uint32{8}}, {2, []uint32{1}}, {5, nil}, {0, nil}, {1, []uint32{1}}}
		for _, st := range steps {
			files := [][]byte{db.Tx(t, st.commit, db.Pages(db.TXID+1, st.pgnos...)), db.Snapshot(t)}
			want, err := ltx.ChecksumReader(bytes.NewReader(db.Image()), int(pageSize))
			if err != nil {
				t.Fatal(err)
			}
			if db.Commit == 0 {
				want = ltx.ChecksumFlag
			}
			if got := db.Checksum(); got != want {
				t.Fatalf("page size %d txid %d: Checksum()=%s, full pass %s", pageSize, db.TXID, got, want)
			}
			for _, b := range files {
				if err := ltx.NewDecoder(bytes.NewReader(b)).Verify(); err != nil {
					t.Fatalf("page size %d txid %d: verify fixture: %v", pageSize, db.TXID, err)
				}
			}
		}
	}
}
