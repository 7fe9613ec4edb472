//go:build !linux

package fsutil

import "os"

// StartWriteback is a no-op where sync_file_range does not exist.
func StartWriteback(*os.File) {}
