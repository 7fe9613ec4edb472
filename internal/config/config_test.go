package config

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replicator/compact"
)

func env(kv ...string) Getenv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestResolve(t *testing.T) {
	const db = "/data/app.db"
	tests := []struct {
		name    string
		params  map[string]string
		env     Getenv
		want    Settings // Client is compared by String()
		client  string
		wantErr string // substring; every refusal wraps ErrInvalid or replica.ErrInvalidURL
	}{
		{name: "Defaults", env: env(), client: "file:///data/app.db-replica",
			want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true}},
		{name: "SQLiteParamsPass", params: map[string]string{"vfs": "litestream", "mode": "rwc", "cache": "shared"}, env: env(),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true}},
		{name: "ReplicaParam", params: map[string]string{"replica": "file:///backups/app"}, env: env("LITESTREAM_REPLICA_URL", "file:///elsewhere"),
			client: "file:///backups/app", want: Settings{Replica: "file:///backups/app", Source: "URI parameter replica", Checksums: true}},
		{name: "ReplicaEnv", env: env("LITESTREAM_REPLICA_URL", "/backups/env"),
			client: "file:///backups/env", want: Settings{Replica: "/backups/env", Source: "LITESTREAM_REPLICA_URL", Checksums: true}},
		// An empty value of the extension's own parameters is refused: it
		// silently fell back to the default, ignoring LITESTREAM_REPLICA_URL.
		{name: "EmptyReplicaParam", params: map[string]string{"replica": ""}, env: env("LITESTREAM_REPLICA_URL", "/backups/env"), wantErr: `URI parameter "replica" is empty`},
		{name: "EmptyCompactionParam", params: map[string]string{"compaction": ""}, env: env(), wantErr: `URI parameter "compaction" is empty`},
		{name: "EmptyS3Option", params: map[string]string{"replica": "s3://b/db", "endpoint": ""}, env: env(), wantErr: `URI parameter "endpoint" is empty`},
		{name: "ReplicaIsRoot", params: map[string]string{"replica": "file:///"}, env: env(), wantErr: "is the filesystem root"},
		{name: "ReplicaIsTheDatabase", params: map[string]string{"replica": "/data/app.db"}, env: env(), wantErr: "is the database's own file"},
		{name: "ReplicaIsTheWAL", env: env("LITESTREAM_REPLICA_URL", "/data/app.db-wal"), wantErr: "LITESTREAM_REPLICA_URL: replica directory /data/app.db-wal is the database's own file"},
		{name: "ReplicaInStateDir", params: map[string]string{"replica": "file:///data/app.db-litestream/r"}, env: env(), wantErr: "is in the database's state directory"},
		{name: "ReplicaIsAFile", params: map[string]string{"replica": "/dev/null"}, env: env(), wantErr: "exists and is not a directory"},
		{name: "S3DefaultPutRate", params: map[string]string{"replica": "s3://bucket/db", "endpoint": "http://127.0.0.1:9000"}, env: env(),
			client: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1",
			want:   Settings{Replica: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000", Source: "URI parameter replica", MaxPutsPerSecond: DefaultS3PutRate, PutBurst: DefaultPutBurst, Checksums: true}},
		{name: "PutRateParamOverEnv", params: map[string]string{"max-puts-per-second": "2.5", "replica": "s3://bucket/db", "endpoint": "http://127.0.0.1:9000"}, env: env("LITESTREAM_MAX_PUTS_PER_SECOND", "7"),
			client: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1", want: Settings{Replica: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000", Source: "URI parameter replica", MaxPutsPerSecond: 2.5, PutBurst: DefaultPutBurst, Checksums: true}},
		{name: "PutRateEnv", params: map[string]string{"replica": "s3://bucket/db", "endpoint": "http://127.0.0.1:9000"}, env: env("LITESTREAM_MAX_PUTS_PER_SECOND", "7"),
			client: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1", want: Settings{Replica: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000", Source: "URI parameter replica", MaxPutsPerSecond: 7, PutBurst: DefaultPutBurst, Checksums: true}},
		{name: "PutRateNoCapS3", params: map[string]string{"max-puts-per-second": "0", "replica": "s3://bucket/db", "endpoint": "http://127.0.0.1:9000"}, env: env(),
			client: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1", want: Settings{Replica: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000", Source: "URI parameter replica", Checksums: true}},
		// A directory has no cap, whatever is set (still checked).
		{name: "PutRateIgnoredForDirectory", params: map[string]string{"max-puts-per-second": "0.5"}, env: env("LITESTREAM_MAX_PUTS_PER_SECOND", "7"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true}},
		{name: "PutRateTooSmall", params: map[string]string{"max-puts-per-second": "1e-300"}, env: env(), wantErr: `"1e-300" is not 0 (no cap) or a number from 0.001 to 1e9`},
		{name: "PutRateTooSmallEnv", env: env("LITESTREAM_MAX_PUTS_PER_SECOND", "0.0009"), wantErr: `LITESTREAM_MAX_PUTS_PER_SECOND: "0.0009"`},
		{name: "PutBurstParamOverEnv", params: map[string]string{"max-puts-per-second": "1", "put-burst": "3", "replica": "s3://bucket/db", "endpoint": "http://127.0.0.1:9000"}, env: env("LITESTREAM_PUT_BURST", "7"),
			client: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1", want: Settings{Replica: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000", Source: "URI parameter replica", MaxPutsPerSecond: 1, PutBurst: 3, Checksums: true}},
		{name: "PutBurstEnv", params: map[string]string{"replica": "s3://bucket/db", "endpoint": "http://127.0.0.1:9000"}, env: env("LITESTREAM_PUT_BURST", "1"),
			client: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1",
			want:   Settings{Replica: "s3://bucket/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000", Source: "URI parameter replica", MaxPutsPerSecond: DefaultS3PutRate, PutBurst: 1, Checksums: true}},
		// A directory has no cap by default: a burst has nothing to bound.
		{name: "PutBurstWithoutCap", params: map[string]string{"put-burst": "5"}, env: env(),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true}},
		{name: "SpoolAndChecksums", params: map[string]string{"spool-max-bytes": "65536", "checksums": "false"}, env: env(),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", SpoolMaxBytes: 65536}},
		{name: "ChecksumsEnv", env: env("LITESTREAM_CHECKSUMS", "0", "LITESTREAM_SPOOL_MAX_BYTES", "1"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", SpoolMaxBytes: 1}},

		{name: "UnknownParam", params: map[string]string{"bogus": "1"}, env: env(), wantErr: `unknown URI parameter "bogus"`},
		{name: "UnknownParamFirstByName", params: map[string]string{"zz": "1", "aa": "1"}, env: env(), wantErr: `unknown URI parameter "aa"`},
		{name: "S3OptionOnFileReplica", params: map[string]string{"endpoint": "http://127.0.0.1:1"}, env: env(), wantErr: `URI parameter "endpoint" applies only to s3:// replicas`},
		{name: "S3OptionOnFileReplicaRedacted", params: map[string]string{"region": "x", "replica": "file://u:secret@/x"}, env: env(), wantErr: `URI parameter "region"`},
		{name: "FTPReplica", params: map[string]string{"replica": "ftp://x"}, env: env(), wantErr: "URI parameter replica: "},
		{name: "BadEnvReplica", env: env("LITESTREAM_REPLICA_URL", "ftp://x"), wantErr: "LITESTREAM_REPLICA_URL: "},
		{name: "S3BadOption", params: map[string]string{"replica": "s3://bucket/db", "force-path-style": "maybe"}, env: env(), wantErr: "force-path-style"},
		{name: "PutRateNotNumber", params: map[string]string{"max-puts-per-second": "fast"}, env: env(), wantErr: `URI parameter max-puts-per-second: "fast"`},
		{name: "PutRateNegative", params: map[string]string{"max-puts-per-second": "-1"}, env: env(), wantErr: `"-1" is not 0 (no cap) or a number`},
		{name: "PutRateNaN", params: map[string]string{"max-puts-per-second": "NaN"}, env: env(), wantErr: `"NaN"`},
		{name: "PutRateInf", params: map[string]string{"max-puts-per-second": "+Inf"}, env: env(), wantErr: `"+Inf"`},
		{name: "PutRateBadEnv", env: env("LITESTREAM_MAX_PUTS_PER_SECOND", "x"), wantErr: `LITESTREAM_MAX_PUTS_PER_SECOND: "x"`},
		{name: "PutBurstZero", params: map[string]string{"put-burst": "0"}, env: env(), wantErr: `URI parameter put-burst: "0" is not a whole number from 1`},
		{name: "PutBurstFraction", params: map[string]string{"put-burst": "2.5"}, env: env(), wantErr: `"2.5"`},
		{name: "PutBurstEmpty", params: map[string]string{"put-burst": ""}, env: env(), wantErr: `URI parameter "put-burst" is empty`},
		{name: "PutBurstBadEnv", env: env("LITESTREAM_PUT_BURST", "lots"), wantErr: `LITESTREAM_PUT_BURST: "lots"`},
		{name: "SpoolZero", params: map[string]string{"spool-max-bytes": "0"}, env: env(), wantErr: `URI parameter spool-max-bytes: "0" is not a positive number of bytes`},
		{name: "SpoolUnits", params: map[string]string{"spool-max-bytes": "64MB"}, env: env(), wantErr: `"64MB"`},
		{name: "SpoolBadEnv", env: env("LITESTREAM_SPOOL_MAX_BYTES", "-5"), wantErr: `LITESTREAM_SPOOL_MAX_BYTES: "-5"`},
		{name: "ChecksumsMaybe", params: map[string]string{"checksums": "maybe"}, env: env(), wantErr: `URI parameter checksums: "maybe" is not true or false`},
		{name: "ChecksumsBadEnv", env: env("LITESTREAM_CHECKSUMS", "yes"), wantErr: `LITESTREAM_CHECKSUMS: "yes"`},

		{name: "CompactionParamOverEnv", params: map[string]string{"compaction": "1s, 4s,16s", "l0-retention": "2s"}, env: env("LITESTREAM_COMPACTION", "1h", "LITESTREAM_L0_RETENTION", "1h"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true,
				Compaction: withC(func(c *compact.Config) {
					c.Intervals, c.L0Retention = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second}, 2*time.Second
				})}},
		{name: "CompactionEnv", env: env("LITESTREAM_COMPACTION", "10s,1m", "LITESTREAM_L0_RETENTION", "0s"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true,
				Compaction: withC(func(c *compact.Config) {
					c.Intervals, c.L0Retention = []time.Duration{10 * time.Second, time.Minute}, 0
				})}},
		{name: "CompactionOff", params: map[string]string{"compaction": "off"}, env: env(),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true,
				Compaction: withC(func(c *compact.Config) { c.Intervals = nil })}},
		{name: "CompactionNotDuration", params: map[string]string{"compaction": "30s,abc"}, env: env(), wantErr: `URI parameter compaction: "30s,abc": level 2's interval "abc" is not a positive duration`},
		{name: "CompactionEmptyLevel", params: map[string]string{"compaction": "30s,,1h"}, env: env(), wantErr: `level 2's interval "" is not a positive duration`},
		{name: "CompactionNotIncreasing", params: map[string]string{"compaction": "5m,30s"}, env: env(), wantErr: `level 2's interval 30s is not longer than level 1's`},
		{name: "CompactionSubSecond", params: map[string]string{"compaction": "500ms"}, env: env(), wantErr: `level 1's interval 500ms is not a whole number of seconds`},
		{name: "CompactionNegative", params: map[string]string{"compaction": "-30s"}, env: env(), wantErr: `"-30s" is not a positive duration`},
		{name: "CompactionTooManyLevels", params: map[string]string{"compaction": "1s,2s,3s,4s,5s,6s,7s,8s,9s"}, env: env(), wantErr: `has 9 levels, at most 8`},
		{name: "CompactionBadEnv", env: env("LITESTREAM_COMPACTION", "soon"), wantErr: `LITESTREAM_COMPACTION: "soon"`},
		{name: "RetentionAndSnapshots", params: map[string]string{"retention": "40s", "snapshot-interval": "30s", "snapshot-max-files": "8"}, env: env("LITESTREAM_SNAPSHOT_MAX_RATIO", "0.5", "LITESTREAM_RETENTION", "1h"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true,
				Compaction: withC(func(c *compact.Config) {
					c.Retention, c.SnapshotInterval, c.SnapshotMaxFiles, c.SnapshotMaxRatio = 40*time.Second, 30*time.Second, 8, 0.5
				})}},
		{name: "RetentionZero", params: map[string]string{"retention": "0s"}, env: env(), wantErr: `URI parameter retention: "0s" is not a duration of at least 1s`},
		{name: "SnapshotIntervalBad", env: env("LITESTREAM_SNAPSHOT_INTERVAL", "daily"), wantErr: `LITESTREAM_SNAPSHOT_INTERVAL: "daily"`},
		{name: "SnapshotMaxFilesZero", params: map[string]string{"snapshot-max-files": "0"}, env: env(), wantErr: `URI parameter snapshot-max-files: "0" is not a whole number of files`},
		{name: "SnapshotMaxRatioNaN", params: map[string]string{"snapshot-max-ratio": "NaN"}, env: env(), wantErr: `URI parameter snapshot-max-ratio: "NaN" is not a positive number`},
		{name: "SnapshotMaxRatioNegative", params: map[string]string{"snapshot-max-ratio": "-1"}, env: env(), wantErr: `"-1" is not a positive number`},
		{name: "L0RetentionBad", params: map[string]string{"l0-retention": "5 minutes"}, env: env(), wantErr: `URI parameter l0-retention: "5 minutes" is not a duration of at least 0s`},
		{name: "L0RetentionNegative", env: env("LITESTREAM_L0_RETENTION", "-1s"), wantErr: `LITESTREAM_L0_RETENTION: "-1s"`},

		{name: "SyncParamOverEnv", params: map[string]string{"replicate": "sync", "sync-timeout": "250ms"}, env: env("LITESTREAM_REPLICATE", "async", "LITESTREAM_SYNC_TIMEOUT", "1m", "LITESTREAM_ON_TIMEOUT", "block"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true,
				Sync: SyncPolicy{Enabled: true, Timeout: 250 * time.Millisecond, Block: true}}},
		{name: "SyncEnv", env: env("LITESTREAM_REPLICATE", "sync"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true,
				Sync: SyncPolicy{Enabled: true, Timeout: DefaultSyncTimeout}}},
		{name: "AsyncParamOverEnv", params: map[string]string{"replicate": "async", "on-timeout": "degrade"}, env: env("LITESTREAM_REPLICATE", "sync"),
			client: "file:///data/app.db-replica", want: Settings{Replica: "/data/app.db-replica", Source: "default", Checksums: true}},
		{name: "ReplicateBad", params: map[string]string{"replicate": "SYNC"}, env: env(), wantErr: `URI parameter replicate: "SYNC" is not async or sync`},
		{name: "ReplicateBadEnv", env: env("LITESTREAM_REPLICATE", "yes"), wantErr: `LITESTREAM_REPLICATE: "yes" is not async or sync`},
		{name: "ReplicateEmpty", params: map[string]string{"replicate": ""}, env: env(), wantErr: `URI parameter "replicate" is empty`},
		// Checked in async mode too: the typo is found before sync is on.
		{name: "SyncTimeoutBadInAsync", params: map[string]string{"sync-timeout": "5"}, env: env(), wantErr: `URI parameter sync-timeout: "5" is not a duration from 1ms to 24h`},
		{name: "SyncTimeoutTooShort", params: map[string]string{"replicate": "sync", "sync-timeout": "100us"}, env: env(), wantErr: `"100us" is not a duration from 1ms`},
		{name: "SyncTimeoutTooLong", env: env("LITESTREAM_SYNC_TIMEOUT", "25h"), wantErr: `LITESTREAM_SYNC_TIMEOUT: "25h"`},
		{name: "SyncTimeoutNegative", params: map[string]string{"sync-timeout": "-1s"}, env: env(), wantErr: `"-1s"`},
		{name: "OnTimeoutBad", params: map[string]string{"on-timeout": "fail"}, env: env(), wantErr: `URI parameter on-timeout: "fail" is not degrade or block`},
		{name: "OnTimeoutBadEnv", env: env("LITESTREAM_ON_TIMEOUT", "wait"), wantErr: `LITESTREAM_ON_TIMEOUT: "wait"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(db, tt.params, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve error %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, replica.ErrInvalidURL) {
					t.Errorf("error %v wraps neither ErrInvalid nor replica.ErrInvalidURL", err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q shows a credential", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got.Client.String() != tt.client {
				t.Errorf("client %q, want %q", got.Client.String(), tt.client)
			}
			got.Client = nil
			if reflect.ValueOf(tt.want.Compaction).IsZero() {
				tt.want.Compaction = compact.Defaults()
			}
			if tt.want.Sync == (SyncPolicy{}) {
				tt.want.Sync = SyncPolicy{Timeout: DefaultSyncTimeout}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// withC is compact.Defaults changed by f.
func withC(f func(*compact.Config)) compact.Config {
	c := compact.Defaults()
	f(&c)
	return c
}

func TestExitFlush(t *testing.T) {
	tests := []struct {
		env     Getenv
		want    time.Duration
		wantErr bool
	}{
		{env(), DefaultExitFlush, false},
		{env("LITESTREAM_EXIT_FLUSH_MS", ""), DefaultExitFlush, false},
		{env("LITESTREAM_EXIT_FLUSH_MS", "0"), 0, false},
		{env("LITESTREAM_EXIT_FLUSH_MS", "250"), 250 * time.Millisecond, false},
		{env("LITESTREAM_EXIT_FLUSH_MS", "-1"), DefaultExitFlush, true},
		{env("LITESTREAM_EXIT_FLUSH_MS", "2s"), DefaultExitFlush, true},
		{env("LITESTREAM_EXIT_FLUSH_MS", "99999999999999"), DefaultExitFlush, true},
	}
	for _, tt := range tests {
		got, err := ExitFlush(tt.env)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ExitFlush = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseParams(t *testing.T) {
	got, err := ParseParams("vfs\x1flitestream\x1ereplica\x1fs3://b/p\x1e\x1eflag\x1e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseParams("compaction\x1f1s\x1ecompaction\x1f2s"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"compaction" is given twice`) {
		t.Errorf("a parameter given twice: %v, want a refusal naming it", err)
	}
	want := map[string]string{"vfs": "litestream", "replica": "s3://b/p", "flag": ""}
	if len(got) != len(want) {
		t.Fatalf("ParseParams = %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ParseParams[%q] = %q, want %q", k, got[k], v)
		}
	}
}

// FuzzResolve: no input panics; every refusal names what it refuses
// through a sentinel the extension reports as a configuration error.
func FuzzResolve(f *testing.F) {
	f.Add("replica\x1fs3://bucket/db\x1eendpoint\x1fhttp://127.0.0.1:1", "")
	f.Add("max-puts-per-second\x1f1e400\x1espool-max-bytes\x1f9", "file:///x")
	f.Add("checksums\x1fFALSE\x1ereplica\x1f%zz", "s3://")
	f.Fuzz(func(t *testing.T, params, envReplica string) {
		p, err := ParseParams(params)
		if err == nil {
			_, err = Resolve("/db/app.db", p, env("LITESTREAM_REPLICA_URL", envReplica))
		}
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, replica.ErrInvalidURL) {
			t.Fatalf("error %v wraps neither ErrInvalid nor replica.ErrInvalidURL", err)
		}
	})
}

func TestLogging(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  Getenv
		want LogConfig
	}{
		{"Default", env(), LogConfig{Level: slog.LevelWarn}},
		{"All", env("LITESTREAM_LOG_LEVEL", "DEBUG", "LITESTREAM_LOG_FORMAT", "JSON", "LITESTREAM_LOG_FILE", "/var/log/ls.log"), LogConfig{Level: slog.LevelDebug, JSON: true, File: "/var/log/ls.log"}},
		{"Text", env("LITESTREAM_LOG_FORMAT", "text", "LITESTREAM_LOG_LEVEL", "info"), LogConfig{Level: slog.LevelInfo}},
		{"BadValues", env("LITESTREAM_LOG_FORMAT", "xml", "LITESTREAM_LOG_LEVEL", "loud"), LogConfig{Level: slog.LevelWarn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Logging(tc.env); got != tc.want {
				t.Errorf("Logging = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLoadWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  Getenv
		want []string // substrings, one per warning
	}{
		{"None", env(), nil},
		{"Valid", env("LITESTREAM_LOG_LEVEL", "DEBUG", "LITESTREAM_GATE_TIMEOUT_MS", "500", "LITESTREAM_BATCH_THREADS", "0", "LITESTREAM_VFS_DEFAULT", "1", "LITESTREAM_EXIT_FLUSH_MS", "0"), nil},
		{"LogLevel", env("LITESTREAM_LOG_LEVEL", "bogus"), []string{`LITESTREAM_LOG_LEVEL: "bogus" is not debug, info, warn or error`}},
		{"LogFormat", env("LITESTREAM_LOG_FORMAT", "xml"), []string{`LITESTREAM_LOG_FORMAT: "xml" is not text or json`}},
		{"GateTimeout", env("LITESTREAM_GATE_TIMEOUT_MS", "-1"), []string{`LITESTREAM_GATE_TIMEOUT_MS: "-1" is not a positive number`}},
		{"GateTimeoutText", env("LITESTREAM_GATE_TIMEOUT_MS", "abc"), []string{`"abc"`}},
		{"BatchThreads", env("LITESTREAM_BATCH_THREADS", "7"), []string{`LITESTREAM_BATCH_THREADS: "7" is not 0 or 1`}},
		{"VFSDefault", env("LITESTREAM_VFS_DEFAULT", "yes"), []string{`LITESTREAM_VFS_DEFAULT: "yes" is not 0 or 1`}},
		{"ExitFlush", env("LITESTREAM_EXIT_FLUSH_MS", "abc"), []string{"LITESTREAM_EXIT_FLUSH_MS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LoadWarnings(tc.env)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q, want it to contain %q", got[i], w)
				}
			}
		})
	}
}
