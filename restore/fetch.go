package restore

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"
)

// DefaultParallelism is how many LTX files Restore downloads at once when
// Options.Parallelism is 0.
const DefaultParallelism = 8

// fetcher downloads the files of a plan, in plan order, into temporary
// files. At most n files are held at once, counting those being downloaded
// and those downloaded but not yet released, so both memory (one copy
// buffer per download) and temporary disk space stay O(n) files.
type fetcher struct {
	results []chan fetched // one per file, buffered: senders never block
	sem     chan struct{}  // a slot per held file
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// fetched is the outcome of one download.
type fetched struct {
	path string // the temporary file; empty on error
	err  error
}

// startFetch starts downloading files into temporary files named by
// pattern (as os.CreateTemp) in dir, at most n held at once.
func startFetch(ctx context.Context, client replica.Client, files []*ltx.FileInfo, dir, pattern string, n int) *fetcher {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{
		results: make([]chan fetched, len(files)),
		sem:     make(chan struct{}, n),
		cancel:  cancel,
	}
	for i := range f.results {
		f.results[i] = make(chan fetched, 1)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for i, info := range files {
			select {
			case f.sem <- struct{}{}:
			case <-ctx.Done():
				for _, ch := range f.results[i:] {
					ch <- fetched{err: ctx.Err()}
				}
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				path, err := download(ctx, client, info, dir, pattern)
				f.results[i] <- fetched{path: path, err: err}
			}()
		}
	}()
	return f
}

// wait returns the path of the downloaded file i. The caller must pass a
// returned path to release.
func (f *fetcher) wait(ctx context.Context, i int) (string, error) {
	select {
	case r := <-f.results[i]:
		if r.err != nil {
			<-f.sem
		}
		return r.path, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// release removes a file returned by wait and frees its slot.
func (f *fetcher) release(path string) {
	_ = os.Remove(path)
	<-f.sem
}

// close stops the downloads, waits for them and removes every downloaded
// file not yet returned by wait.
func (f *fetcher) close() {
	f.cancel()
	f.wg.Wait()
	for _, ch := range f.results {
		select {
		case r := <-ch:
			if r.path != "" {
				_ = os.Remove(r.path)
			}
		default:
		}
	}
}

// download copies the file info into a new temporary file and returns its
// path. On error no file is left. If ctx is done the error is ctx.Err().
func download(ctx context.Context, client replica.Client, info *ltx.FileInfo, dir, pattern string) (_ string, err error) {
	name := fileName(info)
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	rc, err := client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	defer func() { _ = rc.Close() }()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("create temp file for %s: %w", name, err)
	}
	if _, err = io.Copy(f, &ctxReader{ctx: ctx, r: rc}); err != nil {
		err = fmt.Errorf("download %s: %w", name, err)
	}
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close temp file for %s: %w", name, cerr)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
