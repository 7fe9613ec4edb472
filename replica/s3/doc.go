// Package s3 is the replica.Client for S3 and S3-compatible object stores
// (AWS S3, MinIO, Cloudflare R2, ...), built on minio-go.
//
// # Layout
//
// LTX files are stored as objects named
// "<prefix>/<level %04x>/<%016x-%016x>.ltx" (e.g. "db/0000/…", "db/0009/…"),
// the layout Litestream 0.5.16's S3 replica uses, so either tool can read
// the other's objects. (Litestream's directory replica, and ours, use
// "ltx/<level decimal>/" instead.) An empty prefix
// gives keys without a leading slash. Each object carries the user metadata
// "litestream-timestamp" (the upload time, RFC 3339 with nanoseconds), as
// Litestream writes it.
//
// # Transport
//
// The client builds its own *http.Transport, a clone of
// http.DefaultTransport with a 5 s dial timeout and a 30 s response header
// timeout, and never uses http.DefaultTransport or minio-go's default:
//
//   - Proxy: taken from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)
//     only for https endpoints. Plain-http endpoints, typically a local
//     MinIO on 127.0.0.0/8, ::1 or localhost, never go through a proxy.
//   - TLS: the root CAs are the system pool (the OS store; Go honours
//     SSL_CERT_FILE and SSL_CERT_DIR there) plus the PEM certificates in
//     Config.CAFile, if given. AWS_CA_BUNDLE and other CA bundle variables
//     are never read implicitly, so a stray AWS_CA_BUNDLE cannot break an
//     endpoint. Config.SkipVerify disables certificate verification and
//     logs a warning when the client is created.
//
// Requests are retried by minio-go at most a few times with a short
// backoff; callers (the uploader) own longer retry policies and can tell
// transient from permanent failures with IsPermanent.
//
// # Errors
//
// Errors start with "s3: ", name the object key or bucket, and never
// contain credentials. Missing objects wrap replica.ErrNotFound; rejected
// credentials wrap ErrAccessDenied; a missing bucket wraps ErrNoSuchBucket.
package s3
