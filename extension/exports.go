package main

/*
#cgo CFLAGS: -I${SRCDIR}/.. -fvisibility=hidden -O2 -Wall -Wextra -Werror -Wno-unused-parameter
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"github.com/litestream-vfs/litestream_vfs/internal/config"
	"github.com/litestream-vfs/litestream_vfs/internal/metrics"
	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/internal/version"
	"github.com/litestream-vfs/litestream_vfs/vfs"
)

var ioEOF = io.EOF

type entry struct {
	db      *vfs.DB
	replica string // the replica URL as given, for comparing later opens
}

var (
	registryMu sync.Mutex
	registry   = map[string]*entry{}
	logger     = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", "litestream") // until goLoaded
	loadOnce   sync.Once
	sqliteVer  int
)

// newLogger makes the extension's logger from LITESTREAM_LOG_LEVEL,
// _FORMAT and _FILE (config.Logging). A log file that cannot be opened
// leaves stderr, with a warning there: logging never fails a load.
func newLogger() *slog.Logger {
	c := config.Logging(os.LookupEnv)
	var w io.Writer = os.Stderr
	var openErr error
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			openErr = err
		} else {
			w = f // open for the life of the process
		}
	}
	opts := &slog.HandlerOptions{Level: c.Level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.JSON {
		h = slog.NewJSONHandler(w, opts)
	}
	l := slog.New(h).With("component", "litestream")
	if openErr != nil {
		l.Warn("LITESTREAM_LOG_FILE cannot be opened; logging to stderr", "err", openErr)
	}
	return l
}

func main() {}

// goLoaded runs once per load of the extension.
//
//export goLoaded
func goLoaded(version C.int) {
	defer func() { _ = recover() }()
	sqliteVer = int(version)
	loadOnce.Do(func() {
		syncEnv()
		logger = newLogger()
	})
	for _, w := range config.LoadWarnings(os.LookupEnv) {
		// Read once at load: a bad value cannot fail an open; say so.
		fmt.Fprintf(os.Stderr, "litestream: %s\n", w)
	}
	if n := C.ls_batch_own_threads(); n >= 0 {
		logger.Debug("replicator threads set to SCHED_BATCH", "threads", int(n))
		threads.Enable() // and any later thread that runs replication work
	}
	if sqliteVer < 3051003 {
		logger.Info("sqlite before 3.51.3 has a rare WAL-reset race (fixed upstream)", "sqlite_version", sqliteVer)
	}
	if addr := os.Getenv("LITESTREAM_METRICS_ADDR"); addr != "" {
		// Inside someone else's process: a port that is taken is logged,
		// never a failed load.
		if _, err := metrics.Serve(context.Background(), addr, statuses, logger); err != nil {
			logger.Warn("no metrics endpoint", "err", err)
		}
	}
}

// registeredDBs returns every database opened in this process.
func registeredDBs() []*vfs.DB {
	registryMu.Lock()
	defer registryMu.Unlock()
	dbs := make([]*vfs.DB, 0, len(registry))
	for _, e := range registry {
		dbs = append(dbs, e.db)
	}
	return dbs
}

// statuses returns the status of every database opened in this process,
// for the metrics endpoint.
func statuses() []vfs.Status {
	dbs := registeredDBs()
	out := make([]vfs.Status, 0, len(dbs))
	for _, db := range dbs {
		out = append(out, db.Status())
	}
	return out
}

// goDBOpen is called by the shim for every open of a main database: with
// check set before SQLite opens the file, to refuse bad parameters without
// side effects; then, once the file is open, to start replicating it. A
// failed open creates nothing (no state directory, no lock).
//
//export goDBOpen
func goDBOpen(p *C.lsDb, cpath *C.char, cparams *C.char, check C.int, syncOut *C.int, errOut **C.char) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			*errOut = C.CString(fmt.Sprintf("internal error: %v", r))
			rc = 1
		}
	}()
	path := C.GoString(cpath)
	fail := func(msg string) C.int {
		// On stderr too: a host without an sqlite3_log callback (python's
		// sqlite3 module) shows only "unable to open database file".
		fmt.Fprintf(os.Stderr, "litestream: %s: %s\n", path, msg)
		*errOut = C.CString(msg)
		return 1
	}
	params, err := config.ParseParams(C.GoString(cparams))
	if err != nil {
		return fail(err.Error())
	}
	if check != 0 {
		syncEnv() // what the application set since the load counts too
	}
	cfg, err := config.Resolve(path, params, os.LookupEnv)
	if err != nil {
		return fail(err.Error())
	}
	if cfg.Sync.Enabled { // this connection's policy (shim.c lsGoOpen)
		out := unsafe.Slice(syncOut, 3)
		out[0], out[1], out[2] = 1, C.int(cfg.Sync.Timeout.Milliseconds()), 0
		if cfg.Sync.Block {
			out[2] = 1
		}
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if e, ok := registry[path]; ok {
		if e.db.Status().Replica != cfg.Client.String() {
			return fail(fmt.Sprintf("replica %q differs from %q used by another connection in this process", config.Redact(cfg.Replica), e.replica))
		}
		return 0
	}
	if check != 0 {
		return 0
	}
	db, err := vfs.Open(vfs.Config{
		Path:     path,
		Replica:  cfg.Client,
		StateDir: path + "-litestream",
		Host:     &host{p: p, path: path},
		Logger:   logger,

		MaxPutsPerSecond: cfg.MaxPutsPerSecond,
		PutBurst:         cfg.PutBurst,
		SpoolMaxBytes:    cfg.SpoolMaxBytes,
		NoChecksum:       !cfg.Checksums,
		Compaction:       cfg.Compaction,
	})
	if err != nil {
		return fail(err.Error())
	}
	db.Start(context.Background())
	registry[path] = &entry{db: db, replica: config.Redact(cfg.Replica)}
	return 0
}

func lookup(path string) (*vfs.DB, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if e, ok := registry[path]; ok {
		return e.db, nil
	}
	if abs, err := filepath.Abs(path); err == nil {
		if e, ok := registry[abs]; ok {
			return e.db, nil
		}
	}
	return nil, fmt.Errorf("database %q is not opened with vfs=litestream", path)
}

// goSync implements litestream_sync(timeout_ms).
//
//export goSync
func goSync(cpath *C.char, timeoutMs C.int, txid *C.longlong, errOut **C.char) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			*errOut = C.CString(fmt.Sprintf("litestream_sync: internal error: %v", r))
			rc = 1
		}
	}()
	db, err := lookup(C.GoString(cpath))
	if err != nil {
		*errOut = C.CString("litestream_sync: " + err.Error())
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMs)*time.Millisecond)
	defer cancel()
	id, err := db.Sync(ctx)
	if err != nil {
		if errors.Is(err, vfs.ErrNotReplicating) {
			*errOut = C.CString("litestream_sync: " + err.Error())
		} else {
			*errOut = C.CString(fmt.Sprintf("litestream_sync: after %d ms: %v", int(timeoutMs), err))
		}
		return 1
	}
	*txid = C.longlong(id)
	return 0
}

// goStatus implements litestream_status(). The result is malloc'd; the
// shim frees it.
//
//export goStatus
func goStatus(cpath *C.char) (out *C.char) {
	defer func() {
		if r := recover(); r != nil {
			out = C.CString(fmt.Sprintf(`{"state":"error","last_error":%q}`, fmt.Sprint(r)))
		}
	}()
	path := C.GoString(cpath)
	db, err := lookup(path)
	if err != nil {
		b, _ := json.Marshal(vfs.Status{DB: path, State: vfs.StateNotReplicating, Reason: err.Error()})
		return C.CString(string(b))
	}
	b, err := json.Marshal(db.Status())
	if err != nil {
		return C.CString(fmt.Sprintf(`{"state":"error","last_error":%q}`, err.Error()))
	}
	return C.CString(string(b))
}

// goVersion returns this build's version (malloc'd; the caller keeps or
// frees it).
//
//export goVersion
func goVersion() *C.char { return C.CString(version.Version) }

// goPragma answers PRAGMA litestream_* on database path: 0 with the
// result in *out, 1 with the error message in *out (malloc'd either way;
// the shim hands it to SQLite).
//
//export goPragma
func goPragma(cpath, cname *C.char, hasValue C.int, out **C.char) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			*out = C.CString(fmt.Sprintf("litestream: internal error: %v", r))
			rc = 1
		}
	}()
	name := C.GoString(cname)
	db, err := lookup(C.GoString(cpath))
	if err != nil {
		*out = C.CString(fmt.Sprintf("PRAGMA %s: %v", name, err))
		return 1
	}
	res, err := db.Pragma(name, hasValue != 0)
	if err != nil {
		*out = C.CString(err.Error())
		return 1
	}
	*out = C.CString(res)
	return 0
}

// goAtExit flushes what is spooled to the replicas before the process
// exits, for at most LITESTREAM_EXIT_FLUSH_MS (default 5000).
//
//export goAtExit
func goAtExit() {
	defer func() { _ = recover() }()
	timeout, err := config.ExitFlush(os.LookupEnv)
	if err != nil {
		logger.Warn("exit flush: keeping the default", "default", timeout, "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dbs := registeredDBs()
	for _, db := range dbs {
		// A process that does not replicate waits for its own commits,
		// which the owner ships; one that committed nothing has nothing
		// to wait for.
		if !db.Replicating() && db.Status().Commits == 0 {
			continue
		}
		if _, err := db.Sync(ctx); err != nil {
			logger.Warn("exit before the replica caught up; the spool keeps the rest for the next open", "err", err)
		}
	}
	// A compaction being written when the process exits would leave its
	// partial object in the replica: abandon it (its inputs stay; the
	// next owner compacts them).
	sctx, scancel := context.WithTimeout(context.Background(), exitCompactionStop)
	defer scancel()
	for _, db := range dbs {
		if err := db.StopCompaction(sctx); err != nil {
			logger.Warn("exit during a compaction; the next owner removes what it left", "err", err)
		}
	}
}

// exitCompactionStop bounds the wait at exit for a compaction to be
// abandoned (a cancelled write returns at its next read).
const exitCompactionStop = time.Second

// goLog writes a message of the shim (replicate=sync's timeouts, written
// in C with sqlite3_log too) to the extension's log: warn if warn is set,
// else info. Called off the commit path: after a sync-timeout, or once the
// replica caught up.
//
//export goLog
func goLog(warn C.int, cpath, cmsg *C.char) {
	defer func() { _ = recover() }()
	level := slog.LevelInfo
	if warn != 0 {
		level = slog.LevelWarn
	}
	logger.Log(context.Background(), level, C.GoString(cmsg), "db", C.GoString(cpath))
}
