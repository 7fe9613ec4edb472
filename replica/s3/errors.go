package s3

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

var (
	// ErrAccessDenied is returned (wrapped) when the store rejects the
	// request's credentials or permissions: HTTP 403, or the S3 error codes
	// AccessDenied, InvalidAccessKeyId or SignatureDoesNotMatch.
	// Both wrap replica.ErrPermanent.
	ErrAccessDenied = fmt.Errorf("access denied (%w)", replica.ErrPermanent)
	// ErrNoSuchBucket is returned (wrapped) when the bucket does not exist.
	ErrNoSuchBucket = fmt.Errorf("no such bucket (%w)", replica.ErrPermanent)
)

// IsPermanent reports whether err will not go away by retrying the same
// request soon: it wraps ErrAccessDenied or ErrNoSuchBucket (and so
// replica.ErrPermanent). Network failures, timeouts, throttling and server
// errors are transient.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNoSuchBucket)
}

// classify returns err with the sentinel it maps to joined in front of it
// ("access denied: <server message>"), so both errors.Is(err, sentinel)
// and errors.As(err, *minio.ErrorResponse) work. A missing key maps to
// replica.ErrNotFound. Other errors are returned unchanged.
func classify(err error) error {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return err
	}
	switch {
	case resp.Code == "NoSuchKey":
		return fmt.Errorf("%w: %w", replica.ErrNotFound, err)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%w: %w", ErrNoSuchBucket, err)
	case resp.Code == "AccessDenied", resp.Code == "InvalidAccessKeyId",
		resp.Code == "SignatureDoesNotMatch", resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrAccessDenied, err)
	}
	return err
}
