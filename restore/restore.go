package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/fsutil"
)

// Options configures Restore.
type Options struct {
	// OutputPath is the database file to create. Required.
	OutputPath string
	// TXID is the transaction to restore to; 0 restores the latest.
	TXID ltx.TXID
	// Overwrite allows replacing an existing OutputPath.
	Overwrite bool
	// Verify, if set, is called with the path of the fully restored
	// temporary database before it is renamed into place (for example to
	// run PRAGMA integrity_check). An error aborts the restore.
	Verify func(path string) error
	// Logger receives progress events; nil discards them.
	Logger *slog.Logger
	// Parallelism is how many LTX files of a remote replica are downloaded
	// ahead at once, each into a temporary file in the output's directory
	// (the snapshot, and a directory replica's files, are read as they are
	// applied). 0 means DefaultParallelism; negative is an error.
	Parallelism int
	// Progress, if set, is called after each applied file with the files
	// applied so far, the total, and the LTX bytes applied so far out of
	// the total (from the replica listing).
	Progress func(done, total int, bytes, totalBytes int64)
}

// Result describes a completed restore.
type Result struct {
	// TXID is the transaction the database was restored to.
	TXID ltx.TXID
	// PostApplyChecksum is the rolling checksum of the restored database.
	PostApplyChecksum ltx.Checksum
	// PageSize is the database page size, in bytes.
	PageSize uint32
	// Pages is the database size, in pages.
	Pages uint32
	// Files are the replica paths of the applied LTX files, in order.
	Files []string
	// Bytes is the number of LTX bytes read from the replica.
	Bytes int64
	// ChecksumsVerified is false if some file carried
	// ltx.HeaderFlagNoChecksum (as Litestream 0.5 writes them), so that
	// pre-apply checksums, or the final database checksum, could not be
	// checked. File checksums are always verified.
	ChecksumsVerified bool
}

// Restore rebuilds the database as of opts.TXID from client into
// opts.OutputPath. It writes a temporary file "<OutputPath>.tmp-<random>"
// in the output's directory, downloads the files from Plan, up to
// opts.Parallelism at once, into temporary files
// "<OutputPath>.tmp-<random>.ltx" beside it, applies them in order page by
// page (removing each once applied), checks file checksums, pre-apply
// against previous post-apply checksums and the final database checksum,
// calls opts.Verify, fsyncs, renames the file into place and fsyncs the
// directory.
//
// It refuses an existing output unless opts.Overwrite (ErrOutputExists) and
// an output with a -wal or -journal file beside it (ErrOutputInUse). On any
// error, including ctx being done (the error is then ctx.Err()), the
// temporary files are removed and OutputPath is left untouched.
func Restore(ctx context.Context, client replica.Client, opts Options) (_ Result, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.OutputPath == "" {
		return Result{}, errors.New("restore: output path required")
	}
	parallelism := opts.Parallelism
	if parallelism == 0 {
		parallelism = DefaultParallelism
	} else if parallelism < 0 {
		return Result{}, fmt.Errorf("restore: parallelism %d: must be at least 1", parallelism)
	}
	out, err := filepath.Abs(opts.OutputPath)
	if err != nil {
		return Result{}, fmt.Errorf("resolve output path: %w", err)
	}
	logger = logger.With("replica", client.String(), "output", out)

	mode, err := checkOutput(out, opts.Overwrite)
	if err != nil {
		return Result{}, err
	}

	files, err := Plan(ctx, client, opts.TXID)
	if err != nil {
		return Result{}, err
	}
	last := files[len(files)-1]
	logger.Info("restore planned", "txid", last.MaxTXID.String(), "files", len(files))

	f, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp-*")
	if err != nil {
		return Result{}, fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			removeDB(tmp)
		}
	}()

	// Newest first: see applier.
	newestFirst := slices.Clone(files)
	slices.Reverse(newestFirst)
	// The newer files of a remote replica are downloaded ahead. The
	// oldest, the snapshot and usually nearly all the bytes, is read
	// straight from the replica as it is applied rather than downloaded to
	// a temporary file and read again; so is every file of a directory
	// replica, which copying ahead would only slow down.
	prefetch := newestFirst[:len(newestFirst)-1]
	if client.Type() == "file" {
		prefetch = nil
	}
	fetch := startFetch(ctx, client, prefetch, filepath.Dir(out), filepath.Base(out)+".tmp-*.ltx", parallelism)
	defer fetch.close()

	a := newApplier(f)
	defer a.close()
	res := Result{Files: make([]string, 0, len(files))}
	var doneBytes, totalBytes int64
	for _, info := range files {
		totalBytes += info.Size
		res.Files = append(res.Files, fileName(info))
	}
	for i, info := range newestFirst {
		name := fileName(info)
		if i >= len(prefetch) {
			err = a.applyStream(ctx, client, info, name)
		} else {
			path, werr := fetch.wait(ctx, i)
			if werr != nil {
				return Result{}, werr
			}
			err = a.applyFile(ctx, path, info, name)
			fetch.release(path)
		}
		if err != nil {
			return Result{}, err
		}
		if doneBytes += info.Size; opts.Progress != nil {
			opts.Progress(i+1, len(files), doneBytes, totalBytes)
		}
		if logger.Enabled(ctx, slog.LevelDebug) {
			logger.Debug("applied ltx file", "file", name)
		}
	}

	chksum, verified, err := a.finish(ctx)
	if err != nil {
		return Result{}, err
	}
	if verified {
		if chksum != a.newestPost {
			return Result{}, fmt.Errorf("%w: restored database checksum %s does not match post-apply checksum %s of %s",
				ErrChecksumMismatch, chksum, a.newestPost, a.newest)
		}
	} else {
		a.unverified = true
	}
	if a.unverified {
		logger.Warn("ltx files without checksums: pre-apply and database checksums not verified")
	}

	if opts.Verify != nil {
		if err := opts.Verify(tmp); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrVerify, err)
		}
		removeSideFiles(tmp)
	}

	if err := f.Chmod(mode); err != nil {
		return Result{}, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return Result{}, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return Result{}, fmt.Errorf("close %s: %w", tmp, err)
	}
	if _, err := checkOutput(out, opts.Overwrite); err != nil {
		return Result{}, err // appeared while we were restoring
	}
	if err := os.Rename(tmp, out); err != nil {
		return Result{}, fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(out)); err != nil {
		return Result{}, err // the database is in place; only durability is in doubt
	}

	res.TXID = last.MaxTXID
	res.PostApplyChecksum = chksum
	res.PageSize = a.pageSize
	res.Pages = a.commit
	res.Bytes = a.bytes
	res.ChecksumsVerified = !a.unverified
	logger.Info("restored", "txid", res.TXID.String(), "pages", res.Pages, "files", len(res.Files), "bytes", res.Bytes)
	return res, nil
}

// checkOutput returns the mode to give the restored file: that of an
// existing output being overwritten, else 0644. It refuses an existing
// output unless overwrite, anything but a regular file, and an output with
// a -wal or -journal file (SQLite would apply it to the restored database),
// and an output whose parent is not a directory.
func checkOutput(out string, overwrite bool) (fs.FileMode, error) {
	dir := filepath.Dir(out)
	if fi, err := os.Stat(dir); err != nil {
		return 0, fmt.Errorf("stat output directory: %w", err)
	} else if !fi.IsDir() {
		return 0, fmt.Errorf("stat output directory: %s: %w", dir, syscall.ENOTDIR)
	}
	for _, suffix := range []string{"-wal", "-journal"} {
		if _, err := os.Lstat(out + suffix); err == nil {
			return 0, fmt.Errorf("%w: %s exists; remove it or open and close the database to apply it", ErrOutputInUse, out+suffix)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("stat %s: %w", out+suffix, err)
		}
	}
	fi, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return 0o644, nil
	} else if err != nil {
		return 0, fmt.Errorf("stat output: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s is not a regular file", ErrOutputExists, out)
	}
	if !overwrite {
		return 0, fmt.Errorf("%w: %s", ErrOutputExists, out)
	}
	return fi.Mode().Perm(), nil
}

// removeDB removes a temporary database and any side files SQLite made.
func removeDB(path string) {
	_ = os.Remove(path)
	removeSideFiles(path)
}

// removeSideFiles removes the -wal, -shm and -journal files of path.
func removeSideFiles(path string) {
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		_ = os.Remove(path + suffix)
	}
}
