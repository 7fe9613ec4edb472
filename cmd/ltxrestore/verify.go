package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/litestream-vfs/litestream_vfs/restore"
)

// runVerify executes "ltxrestore verify URL": it prints what was checked,
// every gap, skipped checksum check and problem, then "ok: latest
// restorable TXID N" (exit 0) or "FAILED: K problems" (exit 1).
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(programName+" verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	client, code := openSubcommand(fs, args, stdout, stderr)
	if client == nil {
		return code
	}
	r, err := restore.VerifyReplica(ctx, client)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", programName, oneLine(err.Error()))
		return exitFailed
	}
	fmt.Fprintf(stdout, "checked %d files (%d bytes) in %s; latest txid %d (%s)\n",
		r.Files, r.Bytes, client, uint64(r.LatestTXID), r.LatestTXID)
	if len(r.Chain) > 0 {
		fmt.Fprintf(stdout, "restore chain (%d files): %s\n", len(r.Chain), strings.Join(r.Chain, " "))
	}
	for _, g := range r.Gaps {
		fmt.Fprintf(stdout, "gap: %s\n", g)
	}
	for _, u := range r.Unreachable {
		fmt.Fprintf(stdout, "unreachable: %s\n", u)
	}
	for _, name := range r.NoChecksum {
		fmt.Fprintf(stdout, "skipped: %s: no checksums (HeaderFlagNoChecksum) here or before it; continuity not checked\n", name)
	}
	for _, err := range r.Problems {
		fmt.Fprintf(stdout, "problem: %s\n", oneLine(err.Error()))
	}
	if !r.OK() {
		fmt.Fprintf(stdout, "FAILED: %d problems\n", len(r.Problems))
		return exitFailed
	}
	fmt.Fprintf(stdout, "ok: latest restorable TXID %d\n", uint64(r.LatestTXID))
	return exitOK
}
