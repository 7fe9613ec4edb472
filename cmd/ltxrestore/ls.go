package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/replicaurl"
	"github.com/litestream-vfs/litestream_vfs/restore"
	"github.com/superfly/ltx"
)

// timeLayout prints header timestamps: RFC 3339 in UTC with milliseconds
// (LTX precision), fixed width, accepted by -timestamp.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// lsFile is one file in "ls -json" output.
type lsFile struct {
	Level      int    `json:"level"`
	MinTXID    uint64 `json:"min_txid"`
	MaxTXID    uint64 `json:"max_txid"`
	MinTXIDHex string `json:"min_txid_hex"`
	MaxTXIDHex string `json:"max_txid_hex"`
	Timestamp  string `json:"timestamp,omitempty"` // commit time from the header; empty if unreadable
	Size       int64  `json:"size"`                // bytes
	Path       string `json:"path"`
	Error      string `json:"error,omitempty"` // why the header could not be read
}

// lsRestorable is the restorable range in "ls -json" output.
type lsRestorable struct {
	FirstTXID uint64 `json:"first_txid"`
	FirstTime string `json:"first_time"`
	LastTXID  uint64 `json:"last_txid"`
	LastTime  string `json:"last_time"`
}

// lsOutput is the "ls -json" object.
type lsOutput struct {
	Files      []lsFile      `json:"files"`
	Restorable *lsRestorable `json:"restorable"` // null if nothing is restorable
	// Granularity: which points can be restored, by age, newest first.
	Granularity []lsSpan `json:"granularity,omitempty"`
	// Unreachable: runs of file ends no chain from a snapshot reaches
	// (restore.Unreachable); they count in no span.
	Unreachable []string `json:"unreachable,omitempty"`
}

// lsSpan is a run of TXIDs whose restorable points are the ends of the
// files of one level (the finest level that reaches them).
type lsSpan struct {
	Level     int    `json:"level"`
	Points    int    `json:"points"` // file ends in the span
	FirstTXID uint64 `json:"first_txid"`
	LastTXID  uint64 `json:"last_txid"`
	FirstTime string `json:"first_time,omitempty"`
	LastTime  string `json:"last_time,omitempty"`
}

// granularity splits the restorable range into spans by the finest level
// present: level 0 files reach back to the oldest of them, level 1 files
// before that, and so on (compaction keeps level-0 files only for
// l0-retention, higher levels for retention).
func granularity(files []lsFile, r *lsRestorable, reach map[ltx.TXID]bool) []lsSpan {
	if r == nil {
		return nil
	}
	var spans []lsSpan
	end := r.LastTXID // the span ends here
	for level := 0; level < replica.SnapshotLevel && end >= r.FirstTXID; level++ {
		start := uint64(0)
		for _, f := range files {
			if f.Level == level && f.MaxTXID >= r.FirstTXID && (start == 0 || f.MinTXID < start) {
				start = f.MinTXID
			}
		}
		if start == 0 || start > end {
			continue
		}
		// The span covers from the state before its first file on; its
		// first and last points are ends of its own files, each shown with
		// that file's time (the first was shown as the state before the
		// first file, with the first file's time: a snapshot's TXID
		// labelled a level-1 point, or no point at all).
		from := max(start-1, r.FirstTXID)
		sp := lsSpan{Level: level}
		for _, f := range files {
			if f.Level != level || f.MaxTXID < from || f.MaxTXID > end || !reach[ltx.TXID(f.MaxTXID)] {
				continue
			}
			sp.Points++
			if f.MaxTXID >= sp.LastTXID {
				// The span ends at a point of its own level (a finer level's
				// first file may start inside one of this level's files).
				sp.LastTXID, sp.LastTime = f.MaxTXID, f.Timestamp
			}
			if sp.FirstTXID == 0 || f.MaxTXID < sp.FirstTXID {
				sp.FirstTXID, sp.FirstTime = f.MaxTXID, f.Timestamp
			}
		}
		end = from - 1
		if sp.Points == 0 {
			continue
		}
		spans = append(spans, sp)
	}
	return spans
}

// runLs executes "ltxrestore ls [-json] URL".
func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(programName+" ls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "")
	client, code := openSubcommand(fs, args, stdout, stderr)
	if client == nil {
		return code
	}

	infos, err := restore.ListFiles(ctx, client)
	if err == nil && len(infos) == 0 {
		err = fmt.Errorf("%s: %w", client, restore.ErrEmptyReplica)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
		return exitFailed
	}
	out := lsOutput{Files: make([]lsFile, 0, len(infos))}
	var problems []error
	for _, info := range infos {
		f := lsFile{
			Level:      info.Level,
			MinTXID:    uint64(info.MinTXID),
			MaxTXID:    uint64(info.MaxTXID),
			MinTXIDHex: info.MinTXID.String(),
			MaxTXIDHex: info.MaxTXID.String(),
			Size:       info.Size,
			Path:       replica.LTXFilePath(info.Level, info.MinTXID, info.MaxTXID),
		}
		if hdr, err := restore.ReadHeader(ctx, client, info); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stderr, "%s: %v\n", programName, ctx.Err())
				return exitFailed
			}
			f.Error = oneLine(err.Error())
			problems = append(problems, err)
		} else {
			f.Timestamp = formatTime(hdr.Timestamp)
		}
		out.Files = append(out.Files, f)
	}
	first, last, err := restore.RestorableRange(ctx, client)
	if err != nil {
		problems = append(problems, err)
	} else {
		out.Restorable = &lsRestorable{
			FirstTXID: uint64(first.TXID), FirstTime: first.Time.Format(timeLayout),
			LastTXID: uint64(last.TXID), LastTime: last.Time.Format(timeLayout),
		}
	}

	out.Granularity = granularity(out.Files, out.Restorable, restore.Reachable(infos))
	out.Unreachable = restore.Unreachable(infos)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "%s: write output: %v\n", programName, err)
			return exitFailed
		}
	} else {
		printLsTable(stdout, out)
	}
	for _, err := range problems {
		fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
	}
	if len(problems) > 0 {
		return exitFailed
	}
	return exitOK
}

// printLsTable writes out as an aligned table and a restorable line.
func printLsTable(w io.Writer, out lsOutput) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tMIN_TXID\tMAX_TXID\tMIN\tMAX\tTIMESTAMP\tSIZE\t")
	for _, f := range out.Files {
		ts := f.Timestamp
		if ts == "" {
			ts = "unreadable header"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%d\t\n", f.Level, f.MinTXIDHex, f.MaxTXIDHex, f.MinTXID, f.MaxTXID, ts, f.Size)
	}
	_ = tw.Flush()
	if r := out.Restorable; r != nil {
		fmt.Fprintf(w, "restorable: txid %d (%s) at %s to txid %d (%s) at %s\n",
			r.FirstTXID, ltx.TXID(r.FirstTXID), r.FirstTime, r.LastTXID, ltx.TXID(r.LastTXID), r.LastTime)
	} else {
		fmt.Fprintln(w, "restorable: none")
	}
	for _, sp := range out.Granularity {
		fmt.Fprintf(w, "  %d points at the ends of level-%d files: txid %d (%s) to txid %d (%s)\n",
			sp.Points, sp.Level, sp.FirstTXID, sp.FirstTime, sp.LastTXID, sp.LastTime)
	}
	for _, u := range out.Unreachable {
		fmt.Fprintf(w, "unreachable: %s\n", u)
	}
}

// formatTime formats an LTX header timestamp (ms since the Unix epoch).
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(timeLayout)
}

// openSubcommand parses "flags URL" for ls and verify and opens the
// replica. On failure (or -h) it prints what is needed and returns a nil
// client and the exit code.
func openSubcommand(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (replica.Client, int) {
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, errHelp) {
		_, _ = io.WriteString(stdout, usage)
		return nil, exitOK
	}
	if err == nil {
		switch len(positional) {
		case 0:
			err = errors.New("replica URL required")
		case 1:
		default:
			err = fmt.Errorf("one replica URL expected, got %d arguments", len(positional))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nrun '%s -h' for usage\n", programName, err, programName)
		return nil, exitUsage
	}
	client, err := replicaurl.Open(positional[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", programName, err)
		return nil, exitUsage
	}
	reportSkips(client, stderr)
	return client, exitOK
}

// reportSkips makes a directory replica report, once each on stderr,
// the entries its listing skips (names that are not LTX file names,
// uploads in progress): a restore never silently ignores what is there.
func reportSkips(client replica.Client, stderr io.Writer) {
	sr, ok := client.(replica.SkipReporter)
	if !ok {
		return
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	sr.OnSkipped(func(path, why string) {
		mu.Lock()
		defer mu.Unlock()
		if !seen[path] {
			seen[path] = true
			fmt.Fprintf(stderr, "%s: skipped %s: %s\n", programName, path, why)
		}
	})
}
