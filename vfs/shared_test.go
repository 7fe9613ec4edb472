package vfs

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSharedState: whatever the shared file holds (a torn write of a
// killed owner, another program's bytes, a short file), opening it either
// refuses an unknown format by name or maps it, and reading it yields a
// position or errSharedTorn and a known state, without a panic.
func FuzzSharedState(f *testing.F) {
	valid := make([]byte, sharedSize)
	binary.LittleEndian.PutUint32(valid[offMagic:], sharedMagic)
	binary.LittleEndian.PutUint32(valid[offVersion:], sharedVersion)
	f.Add(valid)
	torn := append([]byte{}, valid...)
	binary.LittleEndian.PutUint32(torn[offLock:], 7) // a writer died mid-write
	binary.LittleEndian.PutUint32(torn[offState:], 99)
	f.Add(torn)
	f.Add([]byte{})
	f.Add([]byte("LSS1 and then garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "shared")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := openShared(path)
		if err != nil {
			if !strings.Contains(err.Error(), "unknown format") {
				t.Fatalf("openShared: %v", err)
			}
			return
		}
		defer s.close()
		p, err := s.load()
		if err != nil && !errors.Is(err, errSharedTorn) {
			t.Fatalf("load: %v", err)
		}
		if _, ok := map[string]bool{StateStarting: true, StateOK: true, StateError: true, StateNeedsSnapshot: true, StateNotReplicating: true}[sharedStateName(p.State)]; !ok {
			t.Fatalf("state %d reads as %q", p.State, sharedStateName(p.State))
		}
		if len(p.Reason) > sharedStrLen || len(p.LastError) > sharedStrLen {
			t.Fatalf("strings past their field: %d, %d bytes", len(p.Reason), len(p.LastError))
		}
		_, _, _, _ = s.committed()
	})
}
