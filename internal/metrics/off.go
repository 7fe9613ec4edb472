//go:build nometrics

// Package metrics, in a build without the Prometheus endpoint
// (./build.sh --no-metrics): Serve refuses, and the extension logs why.
package metrics

import (
	"context"
	"errors"
	"log/slog"

	"github.com/litestream-vfs/litestream_vfs/vfs"
)

// Source returns the status of every database replicated or opened in
// this process.
type Source func() []vfs.Status

// ErrNoMetrics is Serve's error in a build without metrics.
var ErrNoMetrics = errors.New("metrics: this build has no metrics endpoint (built with ./build.sh --no-metrics)")

// Serve returns ErrNoMetrics.
func Serve(context.Context, string, Source, *slog.Logger) (string, error) {
	return "", ErrNoMetrics
}
