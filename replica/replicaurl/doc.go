// Package replicaurl opens a replica.Client from a replica URL.
//
// Accepted forms:
//
//	file:///abs/dir       a local directory (no host but "localhost", no query)
//	/abs/dir, rel/dir     a plain path, made absolute
//	s3://BUCKET/PREFIX    an S3 or S3-compatible bucket (replica/s3)
//
// Each backend registers an Opener for its scheme with Register; the file
// and s3 backends are registered by this package.
//
// # S3 URLs
//
//	s3://BUCKET/PREFIX?endpoint=URL&region=R&force-path-style=BOOL&ca=PATH&skip-verify=BOOL
//
// The prefix may be empty. Query parameters (S3Params lists them; any
// other is an error, as is a repeated or empty one):
//
//   - endpoint: the store's base URL, "http://127.0.0.1:9000" or
//     "https://host". Default: $AWS_ENDPOINT_URL_S3, else AWS S3.
//   - region: default $AWS_REGION, else "us-east-1".
//   - force-path-style: address the bucket in the path rather than the
//     host name. Default true when an endpoint is set (MinIO, R2, ...),
//     false for AWS.
//   - ca: a PEM file of extra root CAs for an https endpoint.
//   - skip-verify: disable TLS certificate verification (testing only).
//
// Booleans take the values strconv.ParseBool accepts ("true", "false",
// "1", "0", ...).
//
// Credentials never appear in the URL. They come from the environment:
// LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY if both are
// set, else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN. The environment is read when the URL is opened.
package replicaurl
