// Command extension is the litestream SQLite loadable extension, built with
// `go build -buildmode=c-shared -o litestream_vfs.so ./extension`. It is the
// only package with cgo: shim.c is the VFS and the entry point; the Go files
// connect the shim's per-database events to vfs.DB.
//
// Nothing here may panic, call log.Fatal or os.Exit: the host process
// belongs to someone else. Every //export function recovers.
package main
