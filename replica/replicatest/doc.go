// Package replicatest holds test helpers for replica clients and their
// users: RunClientTests, the conformance suite every replica.Client must
// pass (the file client runs it on a temp dir, the S3 client against
// MinIO), and DB, an in-memory database image that produces LTX fixtures
// with correct rolling checksums.
package replicatest
