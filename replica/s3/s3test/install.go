package s3test

import "github.com/litestream-vfs/litestream_vfs/internal/gotool"

// Binary returns the path of the MinIO server binary,
// <repo>/.cache/bin/minio, installing it first if it is missing.
func Binary() (string, error) {
	return gotool.Binary("minio", MinioModule, MinioVersion)
}

// RepoRoot returns the module root: the nearest directory at or above the
// working directory that holds go.mod.
func RepoRoot() (string, error) { return gotool.RepoRoot() }
