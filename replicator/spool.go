package replicator

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/superfly/ltx"
)

// spoolEntry is one LTX file waiting in the spool.
type spoolEntry struct {
	Level   int
	MinTXID ltx.TXID
	MaxTXID ltx.TXID
	Post    ltx.Checksum // post-apply checksum
	Size    int64        // bytes
	path    string
	tmp     *os.File // written but not yet durable; nil once in the spool
}

// spool holds LTX files on local disk until they are in the replica.
// Layout: <dir>/<level>/<min>-<max>.ltx, written atomically.
type spool struct {
	dir string
}

func (s *spool) path(level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(s.dir, strconv.Itoa(level), ltx.FormatFilename(minTXID, maxTXID))
}

// create opens a temp file for an LTX file; commit or abort it.
func (s *spool) create(level int) (*os.File, error) {
	dir := filepath.Join(s.dir, strconv.Itoa(level))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".spool-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	return f, nil
}

// finish fsyncs e's temp file and renames it into place; the caller
// fsyncs the directory.
func (s *spool) finish(e *spoolEntry) error {
	f := e.tmp
	e.tmp = nil
	e.path = s.path(e.Level, e.MinTXID, e.MaxTXID)
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), e.path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("commit spool file %s: %w", filepath.Base(e.path), err)
	}
	return nil
}

func abort(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

func (s *spool) remove(e *spoolEntry) error {
	if err := os.Remove(e.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spool file: %w", err)
	}
	return nil
}

// load lists the spooled files in upload order, removing leftover temp
// files and reading each file's post-apply checksum from its trailer.
func (s *spool) load() ([]*spoolEntry, error) {
	var out []*spoolEntry
	levels, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	for _, lv := range levels {
		level, err := strconv.Atoi(lv.Name())
		if err != nil || !lv.IsDir() {
			continue
		}
		dir := filepath.Join(s.dir, lv.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read spool: %w", err)
		}
		for _, ent := range ents {
			p := filepath.Join(dir, ent.Name())
			if filepath.Ext(ent.Name()) == ".tmp" {
				_ = os.Remove(p)
				continue
			}
			minTXID, maxTXID, err := ltx.ParseFilename(ent.Name())
			if err != nil {
				continue
			}
			post, size, err := readTrailer(p)
			if err != nil {
				// A torn file cannot be shipped; drop it and let the
				// caller resnapshot past the hole.
				_ = os.Remove(p)
				continue
			}
			out = append(out, &spoolEntry{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Post: post, Size: size, path: p})
		}
	}
	sortEntries(out)
	return out, nil
}

func sortEntries(a []*spoolEntry) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].MaxTXID != a[j].MaxTXID {
			return a[i].MaxTXID < a[j].MaxTXID
		}
		return a[i].Level > a[j].Level
	})
}

// readTrailer returns the post-apply checksum and size of an LTX file,
// after checking the whole file decodes.
func readTrailer(path string) (ltx.Checksum, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	dec := ltx.NewDecoder(f)
	if err := dec.Verify(); err != nil {
		return 0, 0, fmt.Errorf("verify %s: %w", filepath.Base(path), err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return dec.Trailer().PostApplyChecksum, st.Size(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// trailerOf reads the post-apply checksum from the last bytes of r.
func trailerOf(r io.Reader) (ltx.Checksum, error) {
	dec := ltx.NewDecoder(r)
	if err := dec.Verify(); err != nil {
		return 0, err
	}
	return dec.Trailer().PostApplyChecksum, nil
}
