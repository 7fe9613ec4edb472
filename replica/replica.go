// Package replica defines the interface every replica backend (a local
// directory, S3) implements, and the object layout they share.
//
// Layout (after Litestream 0.5): LTX files live under a level directory and
// are named by their TXID range, ltx.FormatFilename(min, max) =
// "%016x-%016x.ltx". Level 0 holds one file per shipped transaction (or a
// merged run of consecutive transactions); SnapshotLevel holds full-database
// snapshots (MinTXID 1).
package replica

import (
	"cmp"
	"context"
	"errors"
	"io"
	"path"
	"slices"
	"strconv"

	"github.com/superfly/ltx"
)

// SnapshotLevel is the level that holds full snapshots, as in Litestream 0.5.
const SnapshotLevel = 9

// MaxLevel is the highest level a client accepts.
const MaxLevel = SnapshotLevel

var (
	// ErrNotFound is returned (wrapped) when an LTX file does not exist.
	ErrNotFound = errors.New("ltx file not found")
	// ErrPermanent is wrapped by backend errors that retrying soon will not
	// cure (bad credentials, a missing bucket); callers retry them slowly
	// and report them at once.
	ErrPermanent = errors.New("permanent replica error")
	// ErrInvalidURL is returned (wrapped) for a replica URL that cannot be used.
	ErrInvalidURL = errors.New("invalid replica url")
	// ErrInvalidLevel is returned (wrapped) for a level outside 0..MaxLevel.
	ErrInvalidLevel = errors.New("invalid ltx level")
	// ErrInvalidEntry is returned (wrapped) for an entry of a replica
	// listing with an LTX file name that cannot be an LTX file (a
	// directory, a named pipe, a symlink that does not resolve).
	ErrInvalidEntry = errors.New("invalid replica entry")
)

// LTXFilePath returns the slash-separated path of an LTX file relative to
// the replica root, "ltx/<level decimal>/<min>-<max>.ltx". Backends that
// store files under this layout use it; error messages name files by it.
func LTXFilePath(level int, minTXID, maxTXID ltx.TXID) string {
	return path.Join("ltx", strconv.Itoa(level), ltx.FormatFilename(minTXID, maxTXID))
}

// Client stores and retrieves LTX files. Implementations must be safe for
// concurrent use.
type Client interface {
	// Type names the backend: "file" or "s3".
	Type() string

	// String returns the replica URL without secrets.
	String() string

	// LTXFiles returns the files at level, ordered by MinTXID then MaxTXID.
	// An empty or missing replica returns an empty slice and no error.
	// Size and CreatedAt are filled; checksums are left zero.
	// A level outside 0..MaxLevel returns an error wrapping ErrInvalidLevel.
	LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error)

	// OpenLTXFile opens the file at level covering [minTXID, maxTXID].
	// Returns an error wrapping ErrNotFound if it does not exist.
	OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error)

	// WriteLTXFile stores r as the file at level covering [minTXID,
	// maxTXID]. The object becomes visible atomically and durably only when
	// complete; writing the same range again replaces it with identical
	// content (deterministic names make retries idempotent).
	WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error)

	// DeleteLTXFiles removes the given files, in order as far as the store
	// allows (a directory: one by one, stopping at the first failure; S3:
	// requests of 1,000 keys, in order, stopping at the first failed
	// request); missing files are not an error.
	DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error
}

// PartialRemover is implemented by clients whose uploads can leave
// partial objects behind when the uploading process is killed (a
// directory's temporary files, S3 multipart uploads never completed). The
// replicator calls RemovePartial once it owns the replica and before its
// first upload: no upload of its own is in flight, and no other process
// uploads to the replica of this database then. It returns how many it
// removed.
type PartialRemover interface {
	RemovePartial(ctx context.Context) (int, error)
}

// RangeLister is implemented by clients that can list part of a level in
// one request where a full listing takes several (S3 returns 1,000 keys a
// request): LTXFilesFrom returns the files at level with MinTXID ≥ from,
// in LTXFiles' order, at most max of them (0: all). A follower lists the
// files after its position with it. ListFrom is the generic fallback.
type RangeLister interface {
	LTXFilesFrom(ctx context.Context, level int, from ltx.TXID, max int) ([]*ltx.FileInfo, error)
}

// ListFrom is c's LTXFilesFrom if it has one, else LTXFiles filtered.
func ListFrom(ctx context.Context, c Client, level int, from ltx.TXID, max int) ([]*ltx.FileInfo, error) {
	if rl, ok := c.(RangeLister); ok {
		return rl.LTXFilesFrom(ctx, level, from, max)
	}
	all, err := c.LTXFiles(ctx, level)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, fi := range all {
		if fi.MinTXID >= from && (max == 0 || len(out) < max) {
			out = append(out, fi)
		}
	}
	return out, nil
}

// LocalChecker is implemented by clients for which asking whether a file
// exists costs no request (a local directory). The uploader asks before
// each upload whether the newest snapshot is still there, so a replica
// emptied underneath a running owner is noticed at once instead of at the
// next compaction.
type LocalChecker interface {
	Exists(level int, minTXID, maxTXID ltx.TXID) (bool, error)
}

// SkipReporter is implemented by clients whose listings can skip entries
// (a name that is not an LTX file name, an upload in progress): fn is told
// of each, with its path and why, so a restore never ignores what is there
// without a word. Set it before first use.
type SkipReporter interface {
	OnSkipped(fn func(path, why string))
}

// SortFileInfos orders files by MinTXID, then MaxTXID, as LTXFiles returns
// them.
func SortFileInfos(infos []*ltx.FileInfo) {
	slices.SortFunc(infos, func(a, b *ltx.FileInfo) int {
		if v := cmp.Compare(a.MinTXID, b.MinTXID); v != 0 {
			return v
		}
		return cmp.Compare(a.MaxTXID, b.MaxTXID)
	})
}
