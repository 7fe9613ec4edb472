package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/restore"
)

// followSuffix names the follower's state file beside OUT.db; lockSuffix
// its lock (one follower per database).
const (
	followSuffix = "-follow"
	lockSuffix   = "-follow.lock"
	minInterval  = 10 * time.Millisecond
)

// runFollow restores the latest state to cfg.out unless a follower of the
// same replica left it there, then keeps it current until ctx ends.
func runFollow(ctx context.Context, cfg config, client replica.Client, opts restore.Options, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(fmt.Sprintf(format, args...)))
		return exitFailed
	}
	statePath := cfg.out + followSuffix
	lock, err := lockFollower(cfg.out + lockSuffix)
	if err != nil {
		return fail("%v", err)
	}
	defer func() { _ = lock.Close() }()

	st, stErr := restore.ReadFollowState(statePath)
	_, dbErr := os.Lstat(cfg.out)
	resume := stErr == nil && dbErr == nil && !cfg.overwrite
	switch {
	case resume && st.Replica != client.String():
		return fail("%s follows %s, not %s (its state file %s): -f replaces it", cfg.out, st.Replica, client, statePath)
	case dbErr == nil && stErr != nil && !cfg.overwrite:
		return fail("%s exists and is not a follower's (no %s): -f replaces it", cfg.out, statePath)
	}
	if !resume {
		if dbErr == nil {
			// A database a follower left (perhaps killed): fold its WAL in,
			// so the restore may replace it.
			_ = os.Chmod(cfg.out, 0o644)
			if err := checkpointOut(cfg.out); err != nil {
				return fail("%v", err)
			}
		}
		opts.Overwrite = true
		res, err := restore.Restore(ctx, client, opts)
		if err != nil {
			return fail("%v", err)
		}
		st = restore.FollowState{Replica: client.String(), TXID: res.TXID}
		if err := restore.WriteFollowState(statePath, st); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "restored TXID %d (0x%s) to %s: %d pages, %d files\n", uint64(res.TXID), res.TXID, cfg.out, res.Pages, len(res.Files))
	}

	// Readers must not write it: read-only for everyone, the follower's
	// own connection opened before.
	if err := os.Chmod(cfg.out, 0o644); err != nil {
		return fail("%v", err)
	}
	sink, err := openSink(ctx, cfg.out)
	if err != nil {
		return fail("%v", err)
	}
	defer sink.close()
	if err := os.Chmod(cfg.out, 0o444); err != nil {
		return fail("%v", err)
	}
	logger := opts.Logger
	f, err := restore.NewFollower(ctx, client, sink, restore.FollowOptions{
		Interval:  cfg.interval,
		StatePath: statePath,
		Logger:    logger,
	})
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stderr, "following %s into %s from TXID %d (every %s); SIGINT or SIGTERM stops\n", client, cfg.out, uint64(f.TXID()), cfg.interval)
	if err := f.Run(ctx); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stderr, "stopped following at TXID %d\n", uint64(f.TXID()))
	return exitOK
}

// lockFollower takes the follower's lock file, or says which process
// holds it.
func lockFollower(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		return nil, fmt.Errorf("another follower (pid %s) keeps this database (lock %s)", strings.TrimSpace(string(b)), path)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// checkpointOut folds the WAL of an existing database into it and closes
// it (the last connection deletes the WAL).
func checkpointOut(path string) error {
	db, err := sql.Open("sqlite3", fileURI(path, ""))
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint %s before replacing it: %w", path, err)
	}
	return nil
}

// sqliteSink writes the follower's batches through SQLite's sqlite_dbpage
// table, on one connection in WAL mode with synchronous=FULL (a batch is
// durable before the state file says so). Between batches it holds a
// write transaction (BEGIN IMMEDIATE), so that a reader that tries to
// write gets SQLITE_BUSY whoever it is (root ignores the file's mode
// 0444); a write that gets in between the follower's COMMIT and its next
// BEGIN is seen in PRAGMA data_version and reported as a foreign write.
type sqliteSink struct {
	db      *sql.DB
	conn    *sql.Conn
	write   *sql.Stmt
	version int64 // PRAGMA data_version in the held transaction
	foreign bool
}

// fileURI is the SQLite URI of the file at path (made absolute: a
// relative path would read as a URI authority).
func fileURI(path, query string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: query}).String()
}

func openSink(ctx context.Context, path string) (*sqliteSink, error) {
	db, err := sql.Open("sqlite3", fileURI(path, "_busy_timeout=10000"))
	if err != nil {
		return nil, err
	}
	s := &sqliteSink{db: db}
	fail := func(err error) (*sqliteSink, error) {
		s.close()
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if s.conn, err = db.Conn(ctx); err != nil {
		return fail(fmt.Errorf("open %s: %w", path, err))
	}
	var mode string
	if err := s.conn.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		return fail(fmt.Errorf("%s: journal mode %q, want wal: %v", path, mode, err))
	}
	if _, err := s.conn.ExecContext(ctx, "PRAGMA synchronous=FULL"); err != nil {
		return fail(err)
	}
	if _, err := s.conn.ExecContext(ctx, "SELECT count(*) FROM sqlite_dbpage WHERE pgno=1"); err != nil {
		if strings.Contains(err.Error(), "no such table") {
			err = errors.New("this ltxrestore's SQLite has no sqlite_dbpage table: build it with ./build.sh (CGO_CFLAGS=-DSQLITE_ENABLE_DBPAGE_VTAB)")
		}
		return fail(fmt.Errorf("-follow: %w", err))
	}
	if s.write, err = s.conn.PrepareContext(ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(?, ?)"); err != nil {
		return fail(err)
	}
	if err := s.hold(); err != nil {
		return fail(err)
	}
	s.foreign = false
	return s, nil
}

// hold begins the write transaction held between batches and notes
// whether another connection committed since the last one.
func (s *sqliteSink) hold() error {
	ctx := context.Background()
	if _, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("take the write lock: %w", err)
	}
	var v int64
	if err := s.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return err
	}
	if v != s.version {
		s.foreign = true
	}
	s.version = v
	return nil
}

func (s *sqliteSink) close() {
	if s.write != nil {
		_ = s.write.Close()
	}
	if s.conn != nil {
		_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		_ = s.conn.Close()
	}
	_ = s.db.Close()
}

func (s *sqliteSink) ForeignWrite(context.Context) (bool, error) {
	f := s.foreign
	s.foreign = false
	return f, nil
}

func (s *sqliteSink) PageSize(ctx context.Context) (uint32, error) {
	var n uint32
	err := s.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&n)
	return n, err
}

func (s *sqliteSink) ReadPages(ctx context.Context, fn func(uint32, []byte) error) error {
	rows, err := s.conn.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var pgno uint32
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return err
		}
		if err := fn(pgno, data); err != nil {
			return err
		}
	}
	return rows.Err()
}

type sqliteTx struct {
	s   *sqliteSink
	ctx context.Context
}

// Begin uses the transaction held since the last batch.
func (s *sqliteSink) Begin(ctx context.Context) (restore.SinkTx, error) {
	return &sqliteTx{s: s, ctx: ctx}, nil
}

func (t *sqliteTx) WritePage(pgno uint32, data []byte) error {
	_, err := t.s.write.ExecContext(t.ctx, pgno, data)
	return err
}

func (t *sqliteTx) Truncate(n uint32) error {
	_, err := t.s.conn.ExecContext(t.ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(?, NULL)", n+1)
	return err
}

// Commit and Rollback run even after ctx ended: a batch is finished or
// undone, never left open; then the write lock is taken again.
func (t *sqliteTx) Commit() error {
	if _, err := t.s.conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		_ = t.Rollback()
		return err
	}
	return t.s.hold()
}

func (t *sqliteTx) Rollback() error {
	_, _ = t.s.conn.ExecContext(context.Background(), "ROLLBACK")
	return t.s.hold()
}

var _ restore.Sink = (*sqliteSink)(nil)
