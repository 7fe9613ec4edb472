package main

import "testing"

// TestSharedLayout: the shim and the Go side map the same file; every
// field must sit at the same offset in both.
func TestSharedLayout(t *testing.T) {
	for _, e := range sharedLayoutErrors() {
		t.Error(e)
	}
}
