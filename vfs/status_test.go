package vfs

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/file"
)

// TestStatusInEveryProcess: the replica's bookkeeping (replica_files,
// replica_bytes, last_snapshot_at, compaction fields, foreign_txns) is
// published with the position, so a process that does not replicate
// reports what the owner does (it reported none of it).
func TestStatusInEveryProcess(t *testing.T) {
	f := newFakeDB(t)
	f.start()
	f.commit(map[uint32]byte{2: 9}, true)
	f.sync()
	f.commit(map[uint32]byte{3: 8}, true)
	f.sync()
	f.db.foundForeign(3)
	f.db.publish()
	other, err := Open(Config{Path: f.path, Replica: file.NewClient(filepath.Join(f.dir, "replica")), Host: newFakeHost(f.path), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	own, got := f.db.Status(), other.Status()
	if own.ReplicaFiles == nil || *own.ReplicaFiles < 2 || own.LastSnapshotAt == "" || own.ForeignTxns != 3 {
		t.Fatalf("owner status %+v: want the replica's files, snapshot time and 3 foreign transactions", own)
	}
	if got.ReplicaFiles == nil || got.ReplicaBytes == nil || *got.ReplicaFiles != *own.ReplicaFiles || *got.ReplicaBytes != *own.ReplicaBytes ||
		got.LastSnapshotAt != own.LastSnapshotAt || got.LastCompactionAt != own.LastCompactionAt || got.CompactionError != own.CompactionError ||
		got.ForeignTxns != own.ForeignTxns || got.LastForeignTxAt != own.LastForeignTxAt {
		t.Fatalf("another process's status %+v\ndiffers from the owner's %+v", got, own)
	}
}
