package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/internal/fsutil"
)

// tmpSuffix ends the name of every file being written; LTXFiles skips them.
const tmpSuffix = ".tmp"

var (
	_ replica.Client         = (*Client)(nil)
	_ replica.PartialRemover = (*Client)(nil)
	_ replica.LocalChecker   = (*Client)(nil)
)

// Client stores LTX files under a local directory. Safe for concurrent use.
type Client struct {
	dir string // absolute or as given to NewClient
	// OnSkip, if set, is told of every directory entry LTXFiles skips (a
	// name that is not an LTX file name, an upload in progress), with the
	// entry's path and why. Set it before first use.
	OnSkip func(path, why string)
}

// NewClient returns a client rooted at dir. Nothing is created until the
// first write; a missing dir reads as an empty replica.
func NewClient(dir string) *Client {
	return &Client{dir: filepath.Clean(dir)}
}

// Dir returns the replica's root directory.
func (c *Client) Dir() string { return c.dir }

// Type returns "file".
func (c *Client) Type() string { return "file" }

// String returns the replica URL, "file://" followed by the directory.
func (c *Client) String() string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(c.dir)}
	return u.String()
}

// levelDir returns the directory holding the files of level.
func (c *Client) levelDir(level int) (string, error) {
	if level < 0 || level > replica.MaxLevel {
		return "", fmt.Errorf("file: level %d: %w", level, replica.ErrInvalidLevel)
	}
	return filepath.Join(c.dir, "ltx", strconv.Itoa(level)), nil
}

// ltxPath returns the path of the file at level covering [minTXID, maxTXID].
func (c *Client) ltxPath(level int, minTXID, maxTXID ltx.TXID) (string, error) {
	dir, err := c.levelDir(level)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, ltx.FormatFilename(minTXID, maxTXID)), nil
}

// LTXFiles returns the LTX files at level ordered by MinTXID then MaxTXID.
// Entries whose names are not LTX file names (including in-progress ".tmp"
// files) are skipped, and reported to OnSkip. An entry with an LTX file
// name must be a regular file or a symlink to one: anything else (a
// directory, a FIFO, a dangling or looping symlink) is an error naming it,
// never a silently shorter history. A missing directory returns an empty
// slice.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := c.levelDir(level)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []*ltx.FileInfo{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("file: read dir %s: %w", dir, err)
	}

	infos := make([]*ltx.FileInfo, 0, len(entries))
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			c.skipped(path, "an upload in progress (or abandoned)")
			continue
		}
		minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
		if err != nil {
			c.skipped(path, "not an LTX file name")
			continue
		}
		fi, err := ltxEntryInfo(e, path)
		if errors.Is(err, errGone) {
			continue // deleted since ReadDir
		} else if err != nil {
			return nil, err
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      fi.Size(),
			CreatedAt: fi.ModTime().UTC(),
		})
	}
	replica.SortFileInfos(infos)
	return infos, nil
}

// errGone is ltxEntryInfo's answer for an entry deleted since it was listed.
var errGone = errors.New("deleted since listed")

// ltxEntryInfo returns the file info of an entry with an LTX file name,
// following a symlink: it must be a regular file.
func ltxEntryInfo(e fs.DirEntry, path string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	var err error
	if e.Type()&fs.ModeSymlink != 0 {
		fi, err = os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			if _, lerr := os.Lstat(path); lerr == nil {
				return nil, fmt.Errorf("file: %s: a symlink to nothing: %w", path, replica.ErrInvalidEntry)
			}
			return nil, errGone
		} else if err != nil {
			return nil, fmt.Errorf("file: %s: a symlink that does not resolve (%v): %w", path, err, replica.ErrInvalidEntry)
		}
	} else {
		fi, err = e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errGone
		} else if err != nil {
			return nil, fmt.Errorf("file: stat %s: %w", path, err)
		}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("file: %s: not a regular file (%s): %w", path, kindOf(fi.Mode()), replica.ErrInvalidEntry)
	}
	return fi, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return m.Type().String()
	}
}

// OnSkipped sets OnSkip (replica.SkipReporter).
func (c *Client) OnSkipped(fn func(path, why string)) { c.OnSkip = fn }

func (c *Client) skipped(path, why string) {
	if c.OnSkip != nil {
		c.OnSkip(path, why)
	}
}

// OpenLTXFile opens the file at level covering [minTXID, maxTXID]. Returns
// an error wrapping replica.ErrNotFound if it does not exist.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := c.ltxPath(level, minTXID, maxTXID)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file: open %s: %w", path, replica.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("file: open %s: %w", path, err)
	}
	return f, nil
}

// WriteLTXFile stores r as the file at level covering [minTXID, maxTXID].
// It writes a temporary file "<name>.<random>.tmp" in the level directory,
// fsyncs and closes it, renames it over the final name and fsyncs the
// directory, so readers see either no file or the complete one. The random
// part keeps concurrent writers of the same range apart. On error the
// temporary file is removed. Directories are created as needed.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (_ *ltx.FileInfo, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := c.ltxPath(level, minTXID, maxTXID)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}

	f, err := os.CreateTemp(dir, filepath.Base(path)+".*"+tmpSuffix)
	if err != nil {
		return nil, fmt.Errorf("file: create temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("file: chmod %s: %w", tmp, err)
	}

	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return nil, fmt.Errorf("file: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("file: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("file: close %s: %w", tmp, err)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return nil, fmt.Errorf("file: stat %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("file: rename %s: %w", tmp, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err // the file is in place; only its durability is in doubt
	}

	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: fi.ModTime().UTC(),
	}, nil
}

// DeleteLTXFiles removes the given files; missing files are not an error.
// It attempts every file and returns the errors joined.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	dirs := make(map[string]struct{})
	for _, info := range files {
		path, err := c.ltxPath(info.Level, info.MinTXID, info.MaxTXID)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			// Stop: the caller's order keeps what is left restorable.
			errs = append(errs, fmt.Errorf("file: remove %s: %w", path, err))
			break
		}
		dirs[filepath.Dir(path)] = struct{}{}
	}
	for dir := range dirs {
		if err := syncDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mkdirAll creates dir and its parents, fsyncing each parent that gained an
// entry so the new directories survive a crash.
func mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("file: create dir %s: %w", dir, err)
	}
	return syncDir(parent)
}

// ctxReader stops a copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// syncDir is fsutil.SyncDir with this backend's error prefix.
func syncDir(dir string) error {
	if err := fsutil.SyncDir(dir); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	return nil
}

// RemovePartial removes the temporary files of uploads that never
// finished (their process was killed between create and rename) from
// every level directory. Only regular files with the temporary suffix are
// removed.
func (c *Client) RemovePartial(ctx context.Context) (int, error) {
	n := 0
	var errs []error
	for level := 0; level <= replica.MaxLevel; level++ {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		dir, _ := c.levelDir(level)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("file: read dir %s: %w", dir, err))
			continue
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), tmpSuffix) || !e.Type().IsRegular() {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			} else if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("file: remove %s: %w", filepath.Join(dir, e.Name()), err))
			}
		}
	}
	return n, errors.Join(errs...)
}

// Exists reports whether the file at level covering [minTXID, maxTXID]
// exists (a stat).
func (c *Client) Exists(level int, minTXID, maxTXID ltx.TXID) (bool, error) {
	path, err := c.ltxPath(level, minTXID, maxTXID)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("file: stat %s: %w", path, err)
	}
	return true, nil
}
