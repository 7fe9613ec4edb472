package replicator

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("put: %w", replica.ErrPermanent), ErrKindPermanent},
		{fmt.Errorf("open: %w", replica.ErrNotFound), ErrKindNotFound},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), ErrKindTimeout},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ErrKindNetwork},
		{fmt.Errorf("write: %w", &os.PathError{Op: "write", Path: "/r/x", Err: syscall.ENOSPC}), ErrKindDiskFull},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), ErrKindNetwork},
		{fmt.Errorf("something else"), ErrKindOther},
		// A syscall.Errno is a net.Error too: a directory replica under a
		// regular file is not a network error.
		{fmt.Errorf("mkdir: %w", &os.PathError{Op: "open", Path: "/r/notadir/ltx/0", Err: syscall.ENOTDIR}), ErrKindOther},
		{fmt.Errorf("open: %w", &os.PathError{Op: "open", Path: "/r/x", Err: syscall.EACCES}), ErrKindOther},
		{fmt.Errorf("dial: %w", &net.DNSError{Err: "no such host", Name: "store"}), ErrKindNetwork},
		{fmt.Errorf("read: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}), ErrKindTimeout},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
