//go:build !linux

package fsutil

import "os"

// StartWriteback is a no-op where sync_file_range does not exist.
func StartWriteback(*os.File, int64, int64) {}

// Preallocate is a no-op where fallocate does not exist.
func Preallocate(*os.File, int64) {}
