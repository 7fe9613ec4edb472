package replicator

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// Kinds of store errors, as counted in Status.UploadErrors (and the
// upload_errors_total metric's kind label).
const (
	ErrKindPermanent = "permanent" // credentials, a missing bucket: replica.ErrPermanent
	ErrKindNotFound  = "not_found" // an object the replicator expected is gone
	ErrKindTimeout   = "timeout"   // the store did not answer in time
	ErrKindNetwork   = "network"   // refused, reset, unreachable
	ErrKindDiskFull  = "disk_full" // a directory replica's filesystem is full
	ErrKindOther     = "other"
)

// ErrKinds are every kind ErrorKind returns.
var ErrKinds = []string{ErrKindPermanent, ErrKindNotFound, ErrKindTimeout, ErrKindNetwork, ErrKindDiskFull, ErrKindOther}

// ErrorKind classifies an error from the store.
func ErrorKind(err error) string {
	var ne net.Error
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.Is(err, replica.ErrPermanent):
		return ErrKindPermanent
	case errors.Is(err, replica.ErrNotFound):
		return ErrKindNotFound
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return ErrKindDiskFull
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &ne) && ne.Timeout() && !isErrno(ne):
		return ErrKindTimeout
	case errors.As(err, &op), errors.As(err, &dns), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EPIPE):
		return ErrKindNetwork
	}
	return ErrKindOther
}

// isErrno reports whether ne is a bare syscall.Errno, which implements
// net.Error for every errno (a directory replica's ENOTDIR counted as a
// network error; found by an attack).
func isErrno(ne net.Error) bool {
	_, ok := ne.(syscall.Errno)
	return ok
}
