package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// readDelayEnv names a hidden, test-only environment variable: a Go
// duration by which every read of an LTX file is delayed, so tests can
// interrupt a restore in progress. Not documented in -h.
const readDelayEnv = "LTXRESTORE_TEST_READ_DELAY"

// withReadDelay wraps client per readDelayEnv; unset, it returns client.
func withReadDelay(client replica.Client) (replica.Client, error) {
	v := os.Getenv(readDelayEnv)
	if v == "" {
		return client, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("invalid %s %q: %w", readDelayEnv, v, err)
	}
	return &slowClient{Client: client, delay: d}, nil
}

// slowClient delays every read of an LTX file by delay, or until the
// context passed to OpenLTXFile is done.
type slowClient struct {
	replica.Client
	delay time.Duration
}

func (c *slowClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID)
	if err != nil {
		return nil, err
	}
	return &slowReader{ReadCloser: rc, ctx: ctx, delay: c.delay}, nil
}

type slowReader struct {
	io.ReadCloser
	ctx   context.Context
	delay time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	t := time.NewTimer(r.delay)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	case <-t.C:
	}
	return r.ReadCloser.Read(p)
}
