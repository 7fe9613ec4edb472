// Package version holds the version of this build: build.sh sets it from
// `git describe` (-ldflags -X); a plain go build says "dev".
package version

// Version is the build's version.
var Version = "dev"
