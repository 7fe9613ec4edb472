// Package safe runs goroutine bodies inside someone else's process: a panic
// in any goroutine would kill the host, so it is recovered, logged and
// returned as an error instead.
package safe

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Run calls fn and returns a recovered panic as an error (nil if fn
// returned normally), logging it with its stack.
func Run(logger *slog.Logger, name string, fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in %s: %v", name, r)
			logger.Error("internal error; this part of replication stopped", "goroutine", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	fn()
	return nil
}
