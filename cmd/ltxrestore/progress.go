package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// progressLine returns a restore.Options.Progress that redraws one line
// ("restoring: 3/12 files, 120.0/480.2 MiB, ETA 4s") on w when w is a
// terminal, and nil otherwise: piped or redirected output stays quiet.
func progressLine(w io.Writer) func(done, total int, bytes, totalBytes int64) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	start := time.Now()
	var last time.Time
	return func(done, total int, bytes, totalBytes int64) {
		if done < total && time.Since(last) < 100*time.Millisecond {
			return // at most ten redraws a second
		}
		last = time.Now()
		eta := "?"
		if bytes > 0 && totalBytes >= bytes {
			left := time.Duration(float64(time.Since(start)) * float64(totalBytes-bytes) / float64(bytes))
			eta = left.Round(time.Second).String()
		}
		fmt.Fprintf(w, "\rrestoring: %d/%d files, %.1f/%.1f MiB, ETA %s ", done, total,
			float64(bytes)/(1<<20), float64(totalBytes)/(1<<20), eta)
		if done == total {
			fmt.Fprint(w, "\n")
		}
	}
}
