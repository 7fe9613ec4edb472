// Command ltxrestore rebuilds a SQLite database from a litestream_vfs
// replica (LTX files). Run "ltxrestore -h" for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/litestream-vfs/litestream_vfs/internal/version"
	"github.com/litestream-vfs/litestream_vfs/replica/replicaurl"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	programName = "ltxrestore"
)

const usage = `usage: ltxrestore [restore] -o OUT.db [-f | -if-db-not-exists] [-if-replica-exists]
                  [-txid N | -timestamp T] [-parallelism N] [-no-integrity-check] [-v] URL
       ltxrestore -follow -o REPLICA.db [-interval 1s] [-f] [-v] URL
       ltxrestore ls [-json] URL
       ltxrestore verify URL
       ltxrestore -version

Ltxrestore rebuilds the SQLite database held by the replica at URL and
writes it to OUT.db. It applies the newest snapshot at or before the target
transaction and the LTX files that follow it, checks every checksum, runs
PRAGMA integrity_check on the result, and only then renames it into place:
on failure OUT.db is left untouched.

URL is a replica URL: file:///abs/dir, a plain directory path, or
s3://bucket/prefix.

Ltxrestore -follow restores the latest state to REPLICA.db, then keeps it
current: every -interval it lists the replica's level 0 (one LIST request)
and applies what is new in one SQLite write transaction, so a reader of
REPLICA.db (plain sqlite3, python3, any SQLite) sees a committed state of
the source, never a mix. Each file is checked against its checksums; a
database that no longer matches the source's history is rebuilt in place
from the newest snapshot. Its position is kept in REPLICA.db-follow (a
killed follower resumes from it; one follower per database, locked by
REPLICA.db-follow.lock). REPLICA.db is made read-only (mode 0444): a reader
that tries to write gets "attempt to write a readonly database". An
existing REPLICA.db that is not this replica's follower's is replaced only
with -f. SIGINT or SIGTERM stops it (exit 0).

Ltxrestore ls lists the LTX files of every level (TXID range in hex and
decimal, the commit timestamp from each file's header, size in bytes) and
the restorable range: the first and last TXID a restore can target and
their commit times. -json prints one JSON object instead of a table.

Ltxrestore verify decodes every file in full, reports TXID gaps within each
level, plans a restore of the latest TXID and checks checksum continuity
along that chain. Its last line is "ok: latest restorable TXID N" or
"FAILED: K problems".

The flags are:

	-o OUT.db
		the database file to write (required)
	-f
		overwrite OUT.db if it exists
	-if-db-not-exists
		if OUT.db exists, print one line saying so and exit 0 without
		restoring (as Litestream's flag of the same name); not with -f
	-if-replica-exists
		if the replica is empty or missing, print one line saying so and
		exit 0 without doing anything (as Litestream's flag of the same
		name)
	-txid N
		restore the state after transaction N instead of the latest;
		N is decimal, 0x-prefixed hex, or 16 hex digits as in LTX file
		names (0 means latest)
	-timestamp T
		restore the last restorable state committed at or before T, an
		RFC 3339 time such as 2024-05-01T12:00:00Z or
		2024-05-01T14:00:00.250+02:00 (LTX timestamps have millisecond
		precision); an error if T is before the first restorable state
	-parallelism N
		download up to N LTX files at once (default 8), each into a
		temporary file OUT.db.tmp-*.ltx beside OUT.db; they are applied
		strictly in order and removed once applied or on failure
	-no-integrity-check
		skip PRAGMA integrity_check
	-v
		log progress to stderr
	-follow
		keep OUT.db current with the replica (see above)
	-interval D
		with -follow, the time between two listings (default 1s; 10ms to
		24h)

Exit status:

	0	the database was restored (ls: listed; verify: ok), or skipped
		by -if-db-not-exists or -if-replica-exists
	1	the restore failed or was interrupted (SIGINT, SIGTERM), the
		replica is empty or missing, or verify found problems (the cause
		is printed; OUT.db and temporary files are not left behind)
	2	the command line is invalid
`

func main() {
	// SIGINT and SIGTERM cancel ctx: a restore in progress stops and
	// removes its temporary files.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	url, out  string
	txid      ltx.TXID
	timestamp time.Time // zero: not given
	overwrite bool
	noCheck   bool
	// ifDBNotExists skips the restore if out exists.
	ifDBNotExists bool
	// ifReplicaExists skips the restore if the replica is empty or missing.
	ifReplicaExists bool
	verbose         bool
	// parallelism is how many LTX files are downloaded at once.
	parallelism int
	// follow keeps out current (-follow), listing every interval.
	follow   bool
	interval time.Duration
}

// errHelp is returned by parseArgs for -h.
var errHelp = errors.New("help requested")

// run executes the command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-version" || args[0] == "--version") {
		fmt.Fprintf(stdout, "%s %s\n", programName, version.Version)
		return exitOK
	}
	if len(args) > 0 {
		switch args[0] {
		case "ls":
			return runLs(ctx, args[1:], stdout, stderr)
		case "verify":
			return runVerify(ctx, args[1:], stdout, stderr)
		}
	}
	cfg, err := parseArgs(args)
	if errors.Is(err, errHelp) {
		_, _ = io.WriteString(stdout, usage)
		return exitOK
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nrun '%s -h' for usage\n", programName, err, programName)
		return exitUsage
	}

	client, err := replicaurl.Open(cfg.url)
	if err == nil {
		reportSkips(client, stderr)
		client, err = withReadDelay(client)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitUsage
	}

	if cfg.ifDBNotExists {
		if _, err := os.Lstat(cfg.out); err == nil {
			fmt.Fprintf(stderr, "%s: %s exists, skipping restore (-if-db-not-exists)\n", programName, cfg.out)
			return exitOK
		}
	}
	if cfg.ifReplicaExists {
		files, err := restore.ListFiles(ctx, client)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
			return exitFailed
		}
		if len(files) == 0 {
			fmt.Fprintf(stderr, "%s: no ltx files in %s, skipping restore (-if-replica-exists)\n", programName, client)
			return exitOK
		}
	}

	asOf := ""
	if !cfg.timestamp.IsZero() {
		p, err := restore.TXIDAt(ctx, client, cfg.timestamp)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
			return exitFailed
		}
		cfg.txid = p.TXID
		asOf = fmt.Sprintf(" (committed at %s)", p.Time.Format(timeLayout))
	}

	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	opts := restore.Options{
		OutputPath:  cfg.out,
		TXID:        cfg.txid,
		Overwrite:   cfg.overwrite,
		Parallelism: cfg.parallelism,
		Logger:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Progress:    progressLine(stderr),
	}
	if !cfg.noCheck {
		opts.Verify = integrityCheck
	}
	if cfg.follow {
		return runFollow(ctx, cfg, client, opts, stderr)
	}
	res, err := restore.Restore(ctx, client, opts)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		fmt.Fprintf(stderr, "%s: interrupted: %s; nothing written to %s\n", programName, oneLine(err.Error()), cfg.out)
		return exitFailed
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
		return exitFailed
	}
	fmt.Fprintf(stderr, "restored TXID %d (0x%s)%s to %s: %d pages, %d files\n",
		uint64(res.TXID), res.TXID, asOf, cfg.out, res.Pages, len(res.Files))
	return exitOK
}

// parseArgs parses "[restore] flags URL"; flags may come before or after
// the URL, which is the only positional argument.
func parseArgs(args []string) (config, error) {
	if len(args) > 0 && args[0] == "restore" {
		args = args[1:]
	}
	var cfg config
	var txid, timestamp string
	fs := flag.NewFlagSet(programName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.out, "o", "", "")
	fs.BoolVar(&cfg.overwrite, "f", false, "")
	fs.BoolVar(&cfg.ifDBNotExists, "if-db-not-exists", false, "")
	fs.BoolVar(&cfg.ifReplicaExists, "if-replica-exists", false, "")
	fs.StringVar(&txid, "txid", "", "")
	fs.BoolVar(&cfg.noCheck, "no-integrity-check", false, "")
	fs.BoolVar(&cfg.verbose, "v", false, "")
	fs.StringVar(&timestamp, "timestamp", "", "")
	fs.IntVar(&cfg.parallelism, "parallelism", restore.DefaultParallelism, "")
	fs.BoolVar(&cfg.follow, "follow", false, "")
	fs.DurationVar(&cfg.interval, "interval", time.Second, "")

	if name := repeatedFlag(args, "o", "txid", "timestamp", "parallelism", "interval"); name != "" {
		// The last would win without a word.
		return config{}, fmt.Errorf("-%s given more than once", name)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return config{}, err
	}
	// A flag given with an empty value is an error, not "not given": an
	// unset shell variable in `-timestamp "$T"` must not restore the latest.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	switch {
	case len(positional) == 0:
		return config{}, errors.New("replica URL required")
	case len(positional) > 1:
		return config{}, fmt.Errorf("one replica URL expected, got %d arguments: %s", len(positional), strings.Join(positional, " "))
	case cfg.out == "":
		return config{}, errors.New("-o OUT.db required")
	case given["txid"] && given["timestamp"]:
		return config{}, errors.New("-txid and -timestamp are mutually exclusive")
	case cfg.parallelism < 1:
		return config{}, fmt.Errorf("invalid -parallelism %d: want at least 1", cfg.parallelism)
	case cfg.overwrite && cfg.ifDBNotExists:
		return config{}, errors.New("-f and -if-db-not-exists are mutually exclusive")
	case given["interval"] && !cfg.follow:
		return config{}, errors.New("-interval applies to -follow only")
	case cfg.follow && (given["txid"] || given["timestamp"]):
		return config{}, errors.New("-follow keeps the latest state: not with -txid or -timestamp")
	case cfg.follow && cfg.ifDBNotExists:
		return config{}, errors.New("-follow resumes from a database it left, or restores afresh with -f: not with -if-db-not-exists")
	case cfg.follow && (cfg.interval < minInterval || cfg.interval > 24*time.Hour):
		return config{}, fmt.Errorf("invalid -interval %s: want 10ms to 24h", cfg.interval)
	}
	cfg.url = positional[0]
	if given["txid"] {
		v, err := parseTXID(txid)
		if err != nil {
			return config{}, err
		}
		cfg.txid = v
	}
	if given["timestamp"] {
		// RFC 3339 (section 5.6) allows "t" and "z" in lower case; Go's
		// layout does not.
		ts, err := time.Parse(time.RFC3339Nano, strings.ToUpper(timestamp))
		if err != nil {
			return config{}, fmt.Errorf("invalid -timestamp %q: want RFC 3339, e.g. 2024-05-01T12:00:00Z", timestamp)
		}
		cfg.timestamp = ts
	}
	return cfg, nil
}

// parseInterspersed parses args with fs, allowing flags before and after
// positional arguments, and returns the positional arguments. Everything
// after "--" is positional. -h returns errHelp.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		} else if err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...) // everything after "--"
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return positional, nil
}

// repeatedFlag returns the first of names given more than once in args
// (before a "--"), as -name, --name, -name=v or --name=v.
func repeatedFlag(args []string, names ...string) string {
	seen := map[string]bool{}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if slices.Contains(names, name) {
			if seen[name] {
				return name
			}
			seen[name] = true
		}
	}
	return ""
}

// parseTXID accepts decimal, 0x-prefixed hex, or exactly 16 hex digits
// (the form used in LTX file names, read as hex even if all digits are
// decimal).
func parseTXID(s string) (ltx.TXID, error) {
	var v uint64
	var err error
	switch {
	case len(s) == 16:
		v, err = strconv.ParseUint(s, 16, 64)
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		v, err = strconv.ParseUint(s[2:], 16, 64)
	default:
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid -txid %q: want decimal, 0x-hex or 16 hex digits", s)
	}
	if v == 0 {
		// Zero is the "latest" of the restore API: as a flag it would
		// silently restore something else than asked for.
		return 0, fmt.Errorf("invalid -txid %q: TXIDs start at 1", s)
	}
	return ltx.TXID(v), nil
}

// oneLine folds a multi-line message (from errors.Join) onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
