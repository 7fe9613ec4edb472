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
	"strconv"
	"strings"

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

const usage = `usage: ltxrestore [restore] -o OUT.db [-f] [-txid N] [-no-integrity-check] [-v] URL

Ltxrestore rebuilds the SQLite database held by the replica at URL and
writes it to OUT.db. It applies the newest snapshot at or before the target
transaction and the LTX files that follow it, checks every checksum, runs
PRAGMA integrity_check on the result, and only then renames it into place:
on failure OUT.db is left untouched.

URL is a replica URL: file:///abs/dir or a plain directory path.

The flags are:

	-o OUT.db
		the database file to write (required)
	-f
		overwrite OUT.db if it exists
	-txid N
		restore the state after transaction N instead of the latest;
		N is decimal, 0x-prefixed hex, or 16 hex digits as in LTX file
		names (0 means latest)
	-no-integrity-check
		skip PRAGMA integrity_check
	-v
		log progress to stderr

Exit status:

	0	the database was restored
	1	the restore failed (the cause is printed)
	2	the command line is invalid
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	url, out  string
	txid      ltx.TXID
	overwrite bool
	noCheck   bool
	verbose   bool
}

// errHelp is returned by parseArgs for -h.
var errHelp = errors.New("help requested")

// run executes the command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args)
	if errors.Is(err, errHelp) {
		_, _ = io.WriteString(stdout, usage)
		return exitOK
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nrun '%s -h' for usage\n", programName, err, programName)
		return exitUsage
	}

	client, err := replicaurl.Open(cfg.url)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return exitUsage
	}

	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	opts := restore.Options{
		OutputPath: cfg.out,
		TXID:       cfg.txid,
		Overwrite:  cfg.overwrite,
		Logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if !cfg.noCheck {
		opts.Verify = integrityCheck
	}
	res, err := restore.Restore(ctx, client, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
		return exitFailed
	}
	fmt.Fprintf(stderr, "restored TXID %d (0x%s) to %s: %d pages, %d files\n",
		uint64(res.TXID), res.TXID, cfg.out, res.Pages, len(res.Files))
	return exitOK
}

// parseArgs parses "[restore] flags URL"; flags may come before or after
// the URL, which is the only positional argument.
func parseArgs(args []string) (config, error) {
	if len(args) > 0 && args[0] == "restore" {
		args = args[1:]
	}
	var cfg config
	var txid string
	fs := flag.NewFlagSet(programName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.out, "o", "", "")
	fs.BoolVar(&cfg.overwrite, "f", false, "")
	fs.StringVar(&txid, "txid", "", "")
	fs.BoolVar(&cfg.noCheck, "no-integrity-check", false, "")
	fs.BoolVar(&cfg.verbose, "v", false, "")

	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return config{}, errHelp
		} else if err != nil {
			return config{}, err
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

	switch {
	case len(positional) == 0:
		return config{}, errors.New("replica URL required")
	case len(positional) > 1:
		return config{}, fmt.Errorf("one replica URL expected, got %d arguments: %s", len(positional), strings.Join(positional, " "))
	case cfg.out == "":
		return config{}, errors.New("-o OUT.db required")
	}
	cfg.url = positional[0]
	if txid != "" {
		v, err := parseTXID(txid)
		if err != nil {
			return config{}, err
		}
		cfg.txid = v
	}
	return cfg, nil
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
	return ltx.TXID(v), nil
}

// oneLine folds a multi-line message (from errors.Join) onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
