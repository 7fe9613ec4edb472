package main

import (
	"bytes"
	"os"
	"testing"
)

func TestProgressLineQuietWhenNotATerminal(t *testing.T) {
	if progressLine(&bytes.Buffer{}) != nil {
		t.Fatal("progress on a buffer, want none")
	}
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if progressLine(f) != nil {
		t.Fatal("progress on a regular file, want none")
	}
}
