package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to start writing f's dirty pages in the n
// bytes at off to disk without waiting for them (sync_file_range
// SYNC_FILE_RANGE_WRITE), so a later fsync of a large file written in one
// go has less left to do. It is a hint: errors are ignored, and it makes
// nothing durable.
func StartWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// Preallocate reserves size bytes of disk for f (fallocate, keeping its
// size), so a file written out of order still gets contiguous blocks. A
// hint: errors are ignored (a file system without fallocate, a full disk
// that the writes will then report).
func Preallocate(f *os.File, size int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
}
