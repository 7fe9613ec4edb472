// Package config resolves how one database is replicated from its SQLite
// URI parameters, then the environment, then the defaults. It is pure Go:
// the extension's cgo layer hands it the parameters the shim collected and
// reports what it refuses.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicaurl"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

// Settings is the resolved configuration of one database.
type Settings struct {
	// Replica is the replica URL as resolved (given, or the default
	// directory); Source says where it came from.
	Replica, Source string
	Client          replica.Client
	// MaxPutsPerSecond caps the sustained rate of uploads (0: no cap);
	// PutBurst is how many may go at once after a quiet spell.
	MaxPutsPerSecond float64
	PutBurst         int
	// SpoolMaxBytes bounds the spool (0: the replicator's default).
	SpoolMaxBytes int64
	// Checksums: false writes LTX files without checksums, which
	// Litestream 0.5's restore requires.
	Checksums bool
	// Compaction is the level schedule and level-0 retention (no
	// intervals: compaction=off).
	Compaction compact.Config
	// Sync is how this connection's commits wait for the replica.
	Sync SyncPolicy
}

// SyncPolicy is replicate=, sync-timeout= and on-timeout= of one
// connection: with Enabled, a COMMIT returns only once the replica holds
// the transaction, or after Timeout; then the database is degraded and
// its commits are asynchronous until the replica has caught up, or, with
// Block, new write transactions fail with SQLITE_BUSY until then.
type SyncPolicy struct {
	Enabled bool
	Timeout time.Duration
	Block   bool
}

// DefaultSyncTimeout is how long a replicate=sync commit waits at most.
const DefaultSyncTimeout = 5 * time.Second

// Getenv looks up an environment variable (os.LookupEnv).
type Getenv func(name string) (string, bool)

// The default PUT budget for S3, where each request is billed (a local
// directory has no cap): a sustained rate of DefaultS3PutRate uploads a
// second, as Litestream's one sync a second, with DefaultPutBurst at once
// after a quiet spell, so a commit after a quiet second ships at once.
const (
	DefaultS3PutRate = 1
	DefaultPutBurst  = 10
)

// ErrInvalid is wrapped by every refusal; the message names the parameter
// or variable and the value.
var ErrInvalid = errors.New("invalid configuration")

// sqliteURIParams are the URI parameters SQLite itself understands.
var sqliteURIParams = map[string]bool{
	"vfs": true, "mode": true, "cache": true, "psow": true, "nolock": true,
	"immutable": true, "modeof": true,
}

// ownParams are the extension's URI parameters (besides the s3 options).
var ownParams = map[string]bool{
	"replica": true, "max-puts-per-second": true, "put-burst": true, "spool-max-bytes": true, "checksums": true,
	"compaction": true, "l0-retention": true, "retention": true, "snapshot-interval": true,
	"snapshot-max-files": true, "snapshot-max-ratio": true,
	"replicate": true, "sync-timeout": true, "on-timeout": true,
}

// Resolve validates the URI parameters of the database at path and
// resolves each setting: the URI parameter, else the environment variable,
// else the default. The replica URL defaults to the directory <path>-replica.
func Resolve(path string, params map[string]string, getenv Getenv) (Settings, error) {
	s3opts := url.Values{}
	for _, k := range sortedKeys(params) {
		if (ownParams[k] || slices.Contains(replicaurl.S3Params(), k)) && params[k] == "" {
			// Likely a mistake (or a NUL): the default or the environment
			// would apply without a word.
			return Settings{}, fmt.Errorf("URI parameter %q is empty: give it a value or leave it out: %w", k, ErrInvalid)
		}
		switch {
		case sqliteURIParams[k], ownParams[k]:
		case slices.Contains(replicaurl.S3Params(), k):
			s3opts.Set(k, params[k])
		default:
			return Settings{}, fmt.Errorf("unknown URI parameter %q: %w", k, ErrInvalid)
		}
	}
	var st Settings
	var err error
	if st.Replica, st.Source, st.Client, err = replicaURL(path, params, s3opts, getenv); err != nil {
		return Settings{}, err
	}
	if err := checkReplicaDir(path, st.Source, st.Client); err != nil {
		return Settings{}, err
	}
	if st.MaxPutsPerSecond, err = putRate(params, getenv, st.Client); err != nil {
		return Settings{}, err
	}
	if st.PutBurst, err = putBurst(params, getenv); err != nil {
		return Settings{}, err
	}
	if st.MaxPutsPerSecond == 0 {
		st.PutBurst = 0 // no cap: nothing to bound
	}
	if st.SpoolMaxBytes, err = spoolBound(params, getenv); err != nil {
		return Settings{}, err
	}
	if st.Checksums, err = checksums(params, getenv); err != nil {
		return Settings{}, err
	}
	if st.Compaction, err = compaction(params, getenv); err != nil {
		return Settings{}, err
	}
	if st.Sync, err = syncPolicy(params, getenv); err != nil {
		return Settings{}, err
	}
	return st, nil
}

// syncPolicy: replicate (async or sync), sync-timeout (from 1ms to 24h)
// and on-timeout (degrade or block), each else LITESTREAM_REPLICATE,
// LITESTREAM_SYNC_TIMEOUT, LITESTREAM_ON_TIMEOUT, else async, 5s and
// degrade. The last two are checked even in async mode, where they do
// nothing: a typo should not wait for the day sync is switched on.
func syncPolicy(params map[string]string, getenv Getenv) (SyncPolicy, error) {
	p := SyncPolicy{Timeout: DefaultSyncTimeout}
	raw, source := setting(params, getenv, "replicate", "LITESTREAM_REPLICATE")
	switch raw {
	case "", "async":
	case "sync":
		p.Enabled = true
	default:
		return p, fmt.Errorf("%s: %q is not async or sync: %w", source, raw, ErrInvalid)
	}
	if raw, source := setting(params, getenv, "sync-timeout", "LITESTREAM_SYNC_TIMEOUT"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < time.Millisecond || d > 24*time.Hour {
			return p, fmt.Errorf("%s: %q is not a duration from 1ms to 24h (500ms, 5s, 1m): %w", source, raw, ErrInvalid)
		}
		p.Timeout = d
	}
	switch raw, source := setting(params, getenv, "on-timeout", "LITESTREAM_ON_TIMEOUT"); raw {
	case "", "degrade":
	case "block":
		p.Block = true
	default:
		return p, fmt.Errorf("%s: %q is not degrade or block: %w", source, raw, ErrInvalid)
	}
	return p, nil
}

// compaction: compaction (the intervals of levels 1, 2, …, or off),
// l0-retention, retention, snapshot-interval, snapshot-max-files and
// snapshot-max-ratio, each else its environment variable, else the
// defaults (compact.Defaults: Litestream's, and 16 files, ratio 1.0).
func compaction(params map[string]string, getenv Getenv) (compact.Config, error) {
	cfg := compact.Defaults()
	raw, source := setting(params, getenv, "compaction", "LITESTREAM_COMPACTION")
	switch raw {
	case "":
	case "off":
		cfg.Intervals = nil
	default:
		parts := strings.Split(raw, ",")
		if len(parts) > compact.MaxLevels {
			return cfg, fmt.Errorf("%s: %q has %d levels, at most %d: %w", source, raw, len(parts), compact.MaxLevels, ErrInvalid)
		}
		cfg.Intervals = cfg.Intervals[:0]
		for i, p := range parts {
			d, err := time.ParseDuration(strings.TrimSpace(p))
			switch {
			case err != nil || d <= 0:
				return cfg, fmt.Errorf("%s: %q: level %d's interval %q is not a positive duration (30s, 5m, 1h) or the whole value off: %w", source, raw, i+1, p, ErrInvalid)
			case d < time.Second || d%time.Second != 0:
				return cfg, fmt.Errorf("%s: %q: level %d's interval %s is not a whole number of seconds: %w", source, raw, i+1, d, ErrInvalid)
			case i > 0 && d <= cfg.Intervals[i-1]:
				return cfg, fmt.Errorf("%s: %q: level %d's interval %s is not longer than level %d's: %w", source, raw, i+1, d, i, ErrInvalid)
			}
			cfg.Intervals = append(cfg.Intervals, d)
		}
	}
	for _, d := range []struct {
		param, env string
		min        time.Duration
		dst        *time.Duration
	}{
		{"l0-retention", "LITESTREAM_L0_RETENTION", 0, &cfg.L0Retention},
		{"retention", "LITESTREAM_RETENTION", time.Second, &cfg.Retention},
		{"snapshot-interval", "LITESTREAM_SNAPSHOT_INTERVAL", time.Second, &cfg.SnapshotInterval},
	} {
		raw, source := setting(params, getenv, d.param, d.env)
		if raw == "" {
			continue
		}
		v, err := time.ParseDuration(raw)
		if err != nil || v < d.min {
			return cfg, fmt.Errorf("%s: %q is not a duration of at least %s (30s, 5m, 24h): %w", source, raw, d.min, ErrInvalid)
		}
		*d.dst = v
	}
	if raw, source := setting(params, getenv, "snapshot-max-files", "LITESTREAM_SNAPSHOT_MAX_FILES"); raw != "" {
		v, err := strconv.Atoi(raw)
		if err != nil || v < 1 {
			return cfg, fmt.Errorf("%s: %q is not a whole number of files, at least 1: %w", source, raw, ErrInvalid)
		}
		cfg.SnapshotMaxFiles = v
	}
	if raw, source := setting(params, getenv, "snapshot-max-ratio", "LITESTREAM_SNAPSHOT_MAX_RATIO"); raw != "" {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return cfg, fmt.Errorf("%s: %q is not a positive number (1.0: the database's size): %w", source, raw, ErrInvalid)
		}
		cfg.SnapshotMaxRatio = v
	}
	return cfg, nil
}

// checkReplicaDir refuses a directory replica that would overwrite or mix
// with the database's own files: the filesystem root, the database or its
// -wal, -shm or -journal file, the state directory or a directory inside
// it, or an existing path that is not a directory.
func checkReplicaDir(path, source string, c replica.Client) error {
	fc, ok := c.(*file.Client)
	if !ok {
		return nil
	}
	dir, err := filepath.Abs(fc.Dir())
	if err != nil {
		return nil // checked again when the replica is written
	}
	db, _ := filepath.Abs(path)
	state := db + "-litestream"
	why := ""
	switch {
	case dir == filepath.Dir(dir):
		why = "is the filesystem root"
	case dir == db || dir == db+"-wal" || dir == db+"-shm" || dir == db+"-journal":
		why = "is the database's own file"
	case dir == state || strings.HasPrefix(dir, state+string(filepath.Separator)):
		why = "is in the database's state directory " + state
	default:
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			why = "exists and is not a directory"
		}
	}
	if why != "" {
		return fmt.Errorf("%s: replica directory %s %s: %w", source, dir, why, ErrInvalid)
	}
	return nil
}

// setting returns the URI parameter param, else the environment variable
// env, and where the value came from ("" if neither is set).
func setting(params map[string]string, getenv Getenv, param, env string) (raw, source string) {
	if v := params[param]; v != "" {
		return v, "URI parameter " + param
	}
	if v, ok := getenv(env); ok && v != "" {
		return v, env
	}
	return "", ""
}

func replicaURL(path string, params map[string]string, s3opts url.Values, getenv Getenv) (raw, source string, c replica.Client, err error) {
	raw, ok := params["replica"]
	source = "URI parameter replica"
	if !ok {
		raw, ok = getenv("LITESTREAM_REPLICA_URL")
		source = "LITESTREAM_REPLICA_URL"
	}
	if !ok || raw == "" {
		raw, source = path+"-replica", "default"
	}
	if len(s3opts) > 0 {
		// Options given as database URI parameters join (and override)
		// the replica URL's own query.
		u, perr := url.Parse(raw)
		if perr != nil || u.Scheme != "s3" {
			k := sortedKeys(s3opts)[0]
			return "", "", nil, fmt.Errorf("URI parameter %q applies only to s3:// replicas (replica is %q): %w", k, Redact(raw), ErrInvalid)
		}
		q := u.Query()
		for k := range s3opts {
			q.Set(k, s3opts.Get(k))
		}
		u.RawQuery = q.Encode()
		raw = u.String()
	}
	c, err = replicaurl.Open(raw)
	if err != nil {
		return "", "", nil, fmt.Errorf("%s: %w", source, err)
	}
	return raw, source, c, nil
}

// putRate: max-puts-per-second, else LITESTREAM_MAX_PUTS_PER_SECOND, else
// DefaultS3PutRate, for S3. A directory has no cap: a value given is
// still checked, but ignored (a service that set the variable for its S3
// database throttled its directory replicas too; found by an attack).
// Below MinPutRate is refused: a rate of 1e-300 stopped shipping for good.
func putRate(params map[string]string, getenv Getenv, c replica.Client) (float64, error) {
	raw, source := setting(params, getenv, "max-puts-per-second", "LITESTREAM_MAX_PUTS_PER_SECOND")
	v := float64(DefaultS3PutRate)
	if raw != "" {
		var err error
		v, err = strconv.ParseFloat(raw, 64)
		if err != nil || v != v || v > 1e9 || v < 0 || (v > 0 && v < MinPutRate) {
			return 0, fmt.Errorf("%s: %q is not 0 (no cap) or a number from %g to 1e9: %w", source, raw, MinPutRate, ErrInvalid)
		}
	}
	if c.Type() != "s3" {
		return 0, nil
	}
	return v, nil
}

// MinPutRate is the lowest PUT cap accepted: one PUT in 1000 seconds.
const MinPutRate = 0.001

// putBurst: put-burst, else LITESTREAM_PUT_BURST, else DefaultPutBurst.
// Without a cap (a directory's default, or max-puts-per-second=0) it has
// nothing to bound and is ignored (but still checked).
func putBurst(params map[string]string, getenv Getenv) (int, error) {
	raw, source := setting(params, getenv, "put-burst", "LITESTREAM_PUT_BURST")
	if raw == "" {
		return DefaultPutBurst, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < 1 || v > 1000000 {
		return 0, fmt.Errorf("%s: %q is not a whole number from 1 to 1000000: %w", source, raw, ErrInvalid)
	}
	return v, nil
}

// spoolBound: spool-max-bytes, else LITESTREAM_SPOOL_MAX_BYTES, else 0.
func spoolBound(params map[string]string, getenv Getenv) (int64, error) {
	raw, source := setting(params, getenv, "spool-max-bytes", "LITESTREAM_SPOOL_MAX_BYTES")
	if raw == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive number of bytes: %w", source, raw, ErrInvalid)
	}
	return v, nil
}

// checksums: checksums, else LITESTREAM_CHECKSUMS, else true.
func checksums(params map[string]string, getenv Getenv) (bool, error) {
	raw, source := setting(params, getenv, "checksums", "LITESTREAM_CHECKSUMS")
	if raw == "" {
		return true, nil
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false: %w", source, raw, ErrInvalid)
	}
	return v, nil
}

// DefaultExitFlush is how long the exit hook ships what is spooled.
const DefaultExitFlush = 5 * time.Second

// ExitFlush returns LITESTREAM_EXIT_FLUSH_MS as a duration, or
// DefaultExitFlush if it is unset; an invalid value is an error (and the
// caller keeps the default).
func ExitFlush(getenv Getenv) (time.Duration, error) {
	raw, ok := getenv("LITESTREAM_EXIT_FLUSH_MS")
	if !ok || raw == "" {
		return DefaultExitFlush, nil
	}
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ms < 0 || ms > 24*3600*1000 {
		return DefaultExitFlush, fmt.Errorf("LITESTREAM_EXIT_FLUSH_MS: %q is not a number of milliseconds from 0 to 86400000: %w", raw, ErrInvalid)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// ParseParams splits the shim's "key\x1fvalue\x1e" records of the URI
// parameters. A parameter given twice is refused (SQLite would see the
// first, a reader of the URI perhaps the last).
func ParseParams(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, rec := range strings.Split(s, "\x1e") {
		if rec == "" {
			continue
		}
		k, v, _ := strings.Cut(rec, "\x1f")
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("URI parameter %q is given twice: %w", k, ErrInvalid)
		}
		out[k] = v
	}
	return out, nil
}

// Redact drops user info from a URL for messages.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return raw
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// LogConfig is how the extension logs (read once, at load).
type LogConfig struct {
	Level slog.Level // LITESTREAM_LOG_LEVEL: warn unless set (quiet inside the host)
	JSON  bool       // LITESTREAM_LOG_FORMAT=json; text unless set
	File  string     // LITESTREAM_LOG_FILE: appended to; "" is stderr
}

// Logging returns the logging configuration; values LoadWarnings names
// as ignored leave the default.
func Logging(getenv Getenv) LogConfig {
	c := LogConfig{Level: slog.LevelWarn}
	if v, ok := getenv("LITESTREAM_LOG_LEVEL"); ok && v != "" {
		var l slog.Level
		if l.UnmarshalText([]byte(v)) == nil {
			c.Level = l
		}
	}
	if v, ok := getenv("LITESTREAM_LOG_FORMAT"); ok {
		c.JSON = strings.EqualFold(v, "json")
	}
	if v, ok := getenv("LITESTREAM_LOG_FILE"); ok {
		c.File = v
	}
	return c
}

// LoadWarnings checks the environment variables read once when the
// extension loads (they cannot fail an open) and returns a message for
// each value that is ignored, naming the variable and what applies.
func LoadWarnings(getenv Getenv) []string {
	var out []string
	check := func(name string, ok func(string) bool, what string) {
		if v, set := getenv(name); set && v != "" && !ok(v) {
			out = append(out, fmt.Sprintf("%s: %q is not %s; ignored", name, v, what))
		}
	}
	zeroOrOne := func(v string) bool { return v == "0" || v == "1" }
	check("LITESTREAM_LOG_LEVEL", func(v string) bool {
		return slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(v))
	}, "debug, info, warn or error (warn applies)")
	check("LITESTREAM_LOG_FORMAT", func(v string) bool {
		return strings.EqualFold(v, "text") || strings.EqualFold(v, "json")
	}, "text or json (text applies)")
	check("LITESTREAM_GATE_TIMEOUT_MS", func(v string) bool {
		n, err := strconv.Atoi(v)
		return err == nil && n > 0
	}, "a positive number of milliseconds (30000 applies)")
	check("LITESTREAM_BATCH_THREADS", zeroOrOne, "0 or 1 (1 applies)")
	check("LITESTREAM_VFS_DEFAULT", zeroOrOne, "0 or 1 (0 applies: litestream is not the default VFS)")
	if _, err := ExitFlush(getenv); err != nil {
		out = append(out, err.Error()+"; the default applies")
	}
	return out
}
