//go:build !linux

package s3test

import "syscall"

// sysProcAttr returns no special attributes off Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }
