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
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/threads"
	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/replicaurl"
	"github.com/litestream-vfs/litestream_vfs/vfs"
)

var ioEOF = io.EOF

// sqliteURIParams are the URI parameters SQLite itself understands.
var sqliteURIParams = map[string]bool{
	"vfs": true, "mode": true, "cache": true, "psow": true, "nolock": true,
	"immutable": true, "modeof": true,
}

// isS3Param reports whether k is an s3:// replica option, accepted as a
// database URI parameter too (a nested "?…&…" would need percent-encoding).
func isS3Param(k string) bool {
	return slices.Contains(replicaurl.S3Params(), k)
}

type entry struct {
	db      *vfs.DB
	replica string // the replica URL as given, for comparing later opens
}

var (
	registryMu sync.Mutex
	registry   = map[string]*entry{}
	logger     = newLogger()
	sqliteVer  int
)

func newLogger() *slog.Logger {
	level := slog.LevelWarn
	if s := os.Getenv("LITESTREAM_LOG_LEVEL"); s != "" {
		_ = level.UnmarshalText([]byte(s))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "litestream")
}

func main() {}

// goLoaded runs once per load of the extension.
//
//export goLoaded
func goLoaded(version C.int) {
	defer func() { _ = recover() }()
	sqliteVer = int(version)
	if n := C.ls_batch_own_threads(); n >= 0 {
		logger.Debug("replicator threads set to SCHED_BATCH", "threads", int(n))
		threads.Enable() // and any later thread that runs replication work
	}
	if sqliteVer < 3051003 {
		logger.Info("sqlite before 3.51.3 has a rare WAL-reset race (fixed upstream)", "sqlite_version", sqliteVer)
	}
}

// parseParams splits the shim's "key\x1fvalue\x1e" records.
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for _, rec := range strings.Split(s, "\x1e") {
		if rec == "" {
			continue
		}
		k, v, _ := strings.Cut(rec, "\x1f")
		out[k] = v
	}
	return out
}

// openConfig validates the URI parameters and resolves the replica URL:
// the replica= parameter, else LITESTREAM_REPLICA_URL, else the directory
// <db>-replica beside the database.
func openConfig(path string, params map[string]string) (string, replica.Client, error) {
	s3opts := url.Values{}
	for k, v := range params {
		switch {
		case sqliteURIParams[k], k == "replica", k == "max-puts-per-second", k == "spool-max-bytes", k == "checksums":
		case isS3Param(k):
			s3opts.Set(k, v)
		default:
			return "", nil, fmt.Errorf("unknown URI parameter %q", k)
		}
	}
	raw, ok := params["replica"]
	source := "URI parameter replica"
	if !ok {
		raw, ok = os.LookupEnv("LITESTREAM_REPLICA_URL")
		source = "LITESTREAM_REPLICA_URL"
	}
	if !ok || raw == "" {
		raw = path + "-replica"
		source = "default"
	}
	if len(s3opts) > 0 {
		// Options given as database URI parameters join (and override)
		// the replica URL's own query.
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "s3" {
			for k := range s3opts {
				return "", nil, fmt.Errorf("URI parameter %q applies only to s3:// replicas (replica is %q)", k, redact(raw))
			}
		}
		q := u.Query()
		for k := range s3opts {
			q.Set(k, s3opts.Get(k))
		}
		u.RawQuery = q.Encode()
		raw = u.String()
	}
	client, err := replicaurl.Open(raw)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", source, err)
	}
	return raw, client, nil
}

// defaultS3PutRate is the default cap on PUTs per second to S3, where each
// request is billed; a local directory has no cap.
const defaultS3PutRate = 10

// putRate returns the upload cap: the max-puts-per-second URI parameter,
// else LITESTREAM_MAX_PUTS_PER_SECOND, else the backend's default.
func putRate(params map[string]string, client replica.Client) (float64, error) {
	raw, source := params["max-puts-per-second"], "URI parameter max-puts-per-second"
	if raw == "" {
		raw, source = os.Getenv("LITESTREAM_MAX_PUTS_PER_SECOND"), "LITESTREAM_MAX_PUTS_PER_SECOND"
	}
	if raw == "" {
		if client.Type() == "s3" {
			return defaultS3PutRate, nil
		}
		return 0, nil
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s: %q is not a number >= 0 (0: no cap)", source, raw)
	}
	return v, nil
}

// spoolBound returns the spool-max-bytes URI parameter, else
// LITESTREAM_SPOOL_MAX_BYTES, else 0 (the replicator's default).
func spoolBound(params map[string]string) (int64, error) {
	raw, source := params["spool-max-bytes"], "URI parameter spool-max-bytes"
	if raw == "" {
		raw, source = os.Getenv("LITESTREAM_SPOOL_MAX_BYTES"), "LITESTREAM_SPOOL_MAX_BYTES"
	}
	if raw == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive number of bytes", source, raw)
	}
	return v, nil
}

// checksumMode returns the checksums URI parameter, else
// LITESTREAM_CHECKSUMS, else true. false writes LTX files without
// checksums, which Litestream 0.5's restore requires.
func checksumMode(params map[string]string) (bool, error) {
	raw, source := params["checksums"], "URI parameter checksums"
	if raw == "" {
		raw, source = os.Getenv("LITESTREAM_CHECKSUMS"), "LITESTREAM_CHECKSUMS"
	}
	if raw == "" {
		return true, nil
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", source, raw)
	}
	return v, nil
}

// redact drops user info from a URL for messages.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return raw
}

// goDBOpen is called by the shim for every open of a main database.
//
//export goDBOpen
func goDBOpen(p *C.lsDb, cpath *C.char, cparams *C.char, errOut **C.char) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			*errOut = C.CString(fmt.Sprintf("internal error: %v", r))
			rc = 1
		}
	}()
	path := C.GoString(cpath)
	params := parseParams(C.GoString(cparams))
	raw, client, err := openConfig(path, params)
	if err != nil {
		*errOut = C.CString(err.Error())
		return 1
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if e, ok := registry[path]; ok {
		if e.db.Status().Replica != client.String() {
			*errOut = C.CString(fmt.Sprintf("replica %q differs from %q used by another connection in this process", raw, e.replica))
			return 1
		}
		return 0
	}
	var spoolMax int64
	checksums := true
	rate, err := putRate(params, client)
	if err == nil {
		spoolMax, err = spoolBound(params)
	}
	if err == nil {
		checksums, err = checksumMode(params)
	}
	if err != nil {
		*errOut = C.CString(err.Error())
		return 1
	}
	db, err := vfs.Open(vfs.Config{
		Path:     path,
		Replica:  client,
		StateDir: path + "-litestream",
		Host:     &host{p: p, path: path},
		Logger:   logger,

		MaxPutsPerSecond: rate,
		SpoolMaxBytes:    spoolMax,
		NoChecksum:       !checksums,
	})
	if err != nil {
		*errOut = C.CString(err.Error())
		return 1
	}
	db.Start(context.Background())
	registry[path] = &entry{db: db, replica: raw}
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

// goAtExit flushes what is spooled to the replicas before the process
// exits, for at most LITESTREAM_EXIT_FLUSH_MS (default 5000).
//
//export goAtExit
func goAtExit() {
	defer func() { _ = recover() }()
	timeout := 5 * time.Second
	if s := os.Getenv("LITESTREAM_EXIT_FLUSH_MS"); s != "" {
		if ms, err := strconv.Atoi(s); err == nil && ms >= 0 {
			timeout = time.Duration(ms) * time.Millisecond
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	registryMu.Lock()
	dbs := make([]*vfs.DB, 0, len(registry))
	for _, e := range registry {
		dbs = append(dbs, e.db)
	}
	registryMu.Unlock()
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
}
