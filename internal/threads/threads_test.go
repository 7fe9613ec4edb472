//go:build linux

package threads

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBackground runs on a thread of its own (locked, so it ends with the
// test goroutine and no other goroutine inherits its policy).
func TestBackground(t *testing.T) {
	for _, tc := range []struct {
		name   string
		enable bool
		want   uint32
	}{
		{"Disabled", false, unix.SCHED_NORMAL},
		{"Enabled", true, unix.SCHED_BATCH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				policy uint32
				err    error
			}
			done := make(chan result)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
				enabled.Store(tc.enable)
				defer enabled.Store(false)
				Background()
				Background() // the second call finds the thread known
				attr, err := unix.SchedGetAttr(0, 0)
				if err != nil {
					done <- result{err: err}
					return
				}
				done <- result{policy: attr.Policy}
			}()
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.policy != tc.want {
				t.Fatalf("policy %d, want %d", r.policy, tc.want)
			}
		})
	}
}
