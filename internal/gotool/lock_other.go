//go:build !unix

package gotool

// lockFile does not lock on systems without flock; parallel installs there
// may both run, and the last one wins.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
