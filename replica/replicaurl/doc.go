// Package replicaurl opens a replica.Client from a replica URL.
//
// Accepted forms:
//
//	file:///abs/dir   a local directory (no host but "localhost", no query)
//	/abs/dir, rel/dir a plain path, made absolute
//
// Each backend registers an Opener for its scheme with Register; the file
// backend is registered by this package. "s3" is reserved: S3 replicas
// arrive in a later version.
package replicaurl
