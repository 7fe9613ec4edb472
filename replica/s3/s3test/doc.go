// Package s3test runs a real MinIO server for tests of the S3 replica
// client and of anything built on it (the replicator, tests/).
//
// The MinIO binary lives at <repo>/.cache/bin/minio, where <repo> is the
// module root (the nearest directory above the working directory holding
// go.mod). If it is missing, the first test to need it installs it with
// "go install github.com/minio/minio@<MinioVersion>" (about two minutes
// cold), under a lock file so parallel test binaries install it once. If
// the binary can be neither found nor installed, tests fail: nothing is
// skipped silently, in CI or out.
package s3test
