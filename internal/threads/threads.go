// Package threads moves the OS threads that run replication work to
// SCHED_BATCH, once enabled (the extension enables it; see
// extension/threads.c). A Go program that embeds the replicator shares its
// threads with the application's goroutines, so it is off by default.
package threads

import "sync/atomic"

var enabled atomic.Bool

// Enable makes Background switch the calling thread.
func Enable() { enabled.Store(true) }

// Background moves the calling goroutine's current OS thread to
// SCHED_BATCH, if enabled and not done before for that thread: no wakeup
// preemption of the application's threads, the same CPU share. Call it
// from the replicator's long-lived goroutines on each round of work; it
// costs a gettid when the thread is known. An OS thread the Go runtime
// creates while the application's thread runs extension code inherits
// that thread's policy; this is where it changes.
func Background() {
	if enabled.Load() {
		background()
	}
}
