package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/superfly/ltx"

	"github.com/litestream-vfs/litestream_vfs/replica"
)

// DefaultEndpoint is the host used when Config.Endpoint is empty: AWS S3,
// over https.
const DefaultEndpoint = "s3.amazonaws.com"

// TimestampMetadataKey is the user metadata key holding an object's upload
// time (RFC 3339 with nanoseconds), as Litestream writes it.
const TimestampMetadataKey = "litestream-timestamp"

const (
	// maxRetries bounds minio-go's own retries of one request (its default
	// is 10, about 8 s of backoff); the uploader retries further.
	maxRetries = 3
	// partSize is the size in bytes of the buffer WriteLTXFile fills before
	// choosing a single PUT (the whole file fits) or a multipart upload in
	// parts of this size. It is minio-go's minimum part size.
	partSize = 16 << 20
	// deleteBatch is the number of keys per DeleteObjects request (the S3
	// maximum).
	deleteBatch = 1000
)

var _ replica.Client = (*Client)(nil)

// Config configures a Client.
type Config struct {
	// Bucket is the bucket name. Required.
	Bucket string
	// Prefix is the key prefix the replica lives under. It is cleaned like
	// a path (path.Clean) and stripped of leading and trailing slashes;
	// empty stores at the bucket root.
	Prefix string
	// Endpoint is the store's base URL, "http://127.0.0.1:9000" or
	// "https://host[:port]"; a bare "host[:port]" means https. Empty means
	// AWS S3 (DefaultEndpoint over https).
	Endpoint string
	// Region is the bucket's region. Empty lets minio-go look it up.
	Region string
	// ForcePathStyle addresses buckets as "endpoint/bucket/key" instead of
	// "bucket.endpoint/key" (MinIO, R2 and most non-AWS stores need it).
	ForcePathStyle bool
	// CAFile is a PEM bundle of extra root CAs trusted for https endpoints
	// (a private CA), added to the system pool.
	CAFile string
	// SkipVerify disables TLS certificate verification. For testing only;
	// NewClient logs a warning.
	SkipVerify bool

	// AccessKeyID is the access key requests are signed with.
	AccessKeyID string
	// SecretAccessKey is the secret key requests are signed with. Never
	// logged, printed by String, or included in an error.
	SecretAccessKey string
	// SessionToken is the optional temporary session token. Never logged,
	// printed or included in an error.
	SessionToken string

	// Transport, if set, carries every request instead of the transport
	// NewClient builds (tests wrap it to count requests). CAFile and
	// SkipVerify then have no effect of their own: wrap the result of
	// NewTransport(cfg, ...) to keep them and the package's proxy rules.
	Transport http.RoundTripper
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Client stores LTX files in an S3 bucket. Safe for concurrent use.
type Client struct {
	cfg      Config // normalized; holds the credentials, never printed
	endpoint string // normalized endpoint URL, "scheme://host[:port]"
	mc       *minio.Client
	onSkip   func(path, why string)
}

// OnSkipped is told of every key a listing skips (replica.SkipReporter).
// Set it before first use.
func (c *Client) OnSkipped(fn func(path, why string)) { c.onSkip = fn }

func (c *Client) skipped(key, why string) {
	if c.onSkip != nil {
		c.onSkip(fmt.Sprintf("s3://%s/%s", c.cfg.Bucket, key), why)
	}
}

// NewClient returns a client for cfg. It checks the configuration and
// reads CAFile but makes no request; a missing bucket or bad credentials
// surface on first use.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: new client: no bucket")
	}
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3: new client: bucket %q: %w", cfg.Bucket, err)
	}
	cfg.Prefix = strings.Trim(path.Clean("/"+cfg.Prefix), "/")
	if !utf8.ValidString(cfg.Prefix) {
		return nil, fmt.Errorf("s3: new client: prefix %q is not valid UTF-8", cfg.Prefix)
	}

	ep := cfg.Endpoint
	if ep == "" {
		ep = "https://" + DefaultEndpoint
	} else if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		// Report the cause only: the *url.Error would quote the endpoint,
		// which could hold a password.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("s3: parse endpoint: %w", err)
	}
	switch red := u.Redacted(); {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("s3: endpoint %q: scheme must be http or https", red)
	case u.Host == "":
		return nil, fmt.Errorf("s3: endpoint %q: no host", red)
	case u.User != nil:
		return nil, fmt.Errorf("s3: endpoint %q: user info not allowed; pass credentials in Config", red)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("s3: endpoint %q: only scheme://host[:port] is allowed", red)
	}
	secure := u.Scheme == "https"

	rt := cfg.Transport
	if rt == nil {
		tr, err := NewTransport(cfg, secure)
		if err != nil {
			return nil, err
		}
		rt = tr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	lookup := minio.BucketLookupAuto
	if cfg.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	mc, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    rt,
		MaxRetries:   maxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: new client for %s: %w", u.Host, err)
	}
	c := &Client{cfg: cfg, endpoint: u.Scheme + "://" + u.Host, mc: mc}
	if cfg.SkipVerify {
		cfg.Logger.Warn("s3: TLS verification disabled", "replica", c.String())
	}
	return c, nil
}

// Type returns "s3".
func (c *Client) Type() string { return "s3" }

// Bucket returns the bucket name.
func (c *Client) Bucket() string { return c.cfg.Bucket }

// Prefix returns the cleaned key prefix, without leading or trailing
// slashes.
func (c *Client) Prefix() string { return c.cfg.Prefix }

// String returns the replica URL without credentials,
// "s3://BUCKET/PREFIX?endpoint=...&region=...", with the query parameters
// replicaurl accepts: endpoint and region when set, force-path-style when
// it differs from replicaurl's default (true exactly when an endpoint is
// given), ca and skip-verify when set.
func (c *Client) String() string {
	q := url.Values{}
	if c.cfg.Endpoint != "" {
		q.Set("endpoint", c.endpoint)
	}
	if c.cfg.Region != "" {
		q.Set("region", c.cfg.Region)
	}
	if c.cfg.ForcePathStyle != (c.cfg.Endpoint != "") {
		q.Set("force-path-style", strconv.FormatBool(c.cfg.ForcePathStyle))
	}
	if c.cfg.CAFile != "" {
		q.Set("ca", c.cfg.CAFile)
	}
	if c.cfg.SkipVerify {
		q.Set("skip-verify", "true")
	}
	u := url.URL{Scheme: "s3", Host: c.cfg.Bucket, RawQuery: q.Encode()}
	if c.cfg.Prefix != "" {
		u.Path = "/" + c.cfg.Prefix
	}
	return u.String()
}

// levelDir returns the key prefix of the files of level, ending in "/".
func (c *Client) levelDir(level int) (string, error) {
	if level < 0 || level > replica.MaxLevel {
		return "", fmt.Errorf("s3: level %d: %w", level, replica.ErrInvalidLevel)
	}
	return path.Join(c.cfg.Prefix, levelName(level)) + "/", nil
}

// levelName is a level's key element, "%04x" as Litestream 0.5's S3
// replica names it (its directory replica uses "ltx/<decimal>" instead).
func levelName(level int) string { return fmt.Sprintf("%04x", level) }

// key returns the object key of the file at level covering [minTXID, maxTXID].
func (c *Client) key(level int, minTXID, maxTXID ltx.TXID) (string, error) {
	if level < 0 || level > replica.MaxLevel {
		return "", fmt.Errorf("s3: level %d: %w", level, replica.ErrInvalidLevel)
	}
	return path.Join(c.cfg.Prefix, levelName(level), ltx.FormatFilename(minTXID, maxTXID)), nil
}

// LTXFiles returns the LTX files at level ordered by MinTXID then MaxTXID.
// Keys whose last element is not an LTX file name are skipped (and told
// to OnSkipped). A level
// without objects returns an empty slice; a missing bucket returns an
// error wrapping ErrNoSuchBucket.
func (c *Client) LTXFiles(ctx context.Context, level int) ([]*ltx.FileInfo, error) {
	return c.LTXFilesFrom(ctx, level, 0, 0)
}

// LTXFilesFrom implements replica.RangeLister: the listing starts after
// the key of MinTXID from-1 (keys sort by MinTXID: 16 hex digits), and
// stops after max files (0: all), so a follower's "what is new" is one
// request whatever the level holds.
func (c *Client) LTXFilesFrom(ctx context.Context, level int, from ltx.TXID, max int) ([]*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := c.levelDir(level)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx) // stops the lister on early return
	defer cancel()

	opts := minio.ListObjectsOptions{Prefix: dir}
	if from > 0 {
		opts.StartAfter = dir + fmt.Sprintf("%016x", uint64(from)) // "…from-…" sorts after it
	}
	if max > 0 {
		opts.MaxKeys = max
	}
	infos := []*ltx.FileInfo{}
	for obj := range c.mc.ListObjects(ctx, c.cfg.Bucket, opts) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3: list %s/%s: %w", c.cfg.Bucket, dir, classify(obj.Err))
		}
		name, ok := strings.CutPrefix(obj.Key, dir)
		if !ok || strings.Contains(name, "/") {
			c.skipped(obj.Key, "not an LTX file name (a prefix below the level)")
			continue
		}
		minTXID, maxTXID, err := ltx.ParseFilename(name)
		if err != nil {
			c.skipped(obj.Key, "not an LTX file name")
			continue
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      obj.Size,
			CreatedAt: obj.LastModified.UTC(),
		})
		if max > 0 && len(infos) == max {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	replica.SortFileInfos(infos)
	return infos, nil
}

// OpenLTXFile opens the file at level covering [minTXID, maxTXID]. It
// sends the GET and waits for the response headers, so a missing object
// returns an error wrapping replica.ErrNotFound here rather than on first
// Read; the body streams as the caller reads. Close releases the
// connection.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := c.key(level, minTXID, maxTXID)
	if err != nil {
		return nil, err
	}
	// One eager GET (minio.Core), not the lazy minio.Object, which would
	// send a HEAD before the GET to learn whether the object exists.
	body, _, _, err := minio.Core{Client: c.mc}.GetObject(ctx, c.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3: get %s/%s: %w", c.cfg.Bucket, key, classify(err))
	}
	return body, nil
}

// WriteLTXFile stores r as the file at level covering [minTXID, maxTXID].
// A reader of known size that can be read at any offset (Size and ReadAt,
// as *io.SectionReader) is streamed as it is, in 16 MiB parts if larger.
// Any other is buffered (as it arrives) up to 16 MiB and sent with one PUT if it fits,
// else as a multipart upload in 16 MiB parts. Either way the object
// appears only when complete, and a failed upload leaves any previous
// object in place. An error reading r is returned wrapped.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := c.key(level, minTXID, maxTXID)
	if err != nil {
		return nil, err
	}

	now := time.Now().UTC()
	opts := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{TimestampMetadataKey: now.Format(time.RFC3339Nano)},
		PartSize:     partSize,
	}
	var cr *countingReader // the reader of an upload of unknown size
	var body io.Reader
	var size int64 // -1 while unknown; the object's size once stored
	if s, ok := r.(sizedReaderAt); ok {
		// A spool entry: its size is known and it can be read at any
		// offset, so it goes up straight from the file, in parts if
		// large, with no buffer of its size in the host process (a
		// 300 MB transaction raised the writer's peak RSS by 112 MB).
		size = s.Size()
		body = io.NewSectionReader(s, 0, size)
	} else {
		cr = &countingReader{r: ctxReader{ctx: ctx, r: r}}
		// The buffer grows with what arrives, up to a part: a merged
		// upload of a few KiB took a 16 MiB buffer each (20,000 small
		// transactions added 36 MB to the writer's peak RSS).
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(io.LimitReader(cr, partSize+1)); err != nil {
			return nil, fmt.Errorf("s3: put %s/%s: read: %w", c.cfg.Bucket, key, err)
		}
		n := buf.Len()
		body, size = bytes.NewReader(buf.Bytes()), int64(n)
		if n > partSize { // more to come: stream the rest as a multipart upload
			body, size = io.MultiReader(bytes.NewReader(buf.Bytes()), cr), -1
		}
	}
	if _, err := c.mc.PutObject(ctx, c.cfg.Bucket, key, body, size, opts); err != nil {
		if cr != nil && cr.err != nil && errors.Is(err, cr.err) {
			return nil, fmt.Errorf("s3: put %s/%s: read: %w", c.cfg.Bucket, key, err)
		}
		return nil, fmt.Errorf("s3: put %s/%s: %w", c.cfg.Bucket, key, classify(err))
	}
	if size < 0 {
		size = cr.n
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      size,
		CreatedAt: now,
	}, nil
}

// DeleteLTXFiles removes the given files in batches of up to 1000 keys;
// missing files are not an error. An invalid level fails only its file;
// the others are still removed. Returns the errors joined, one per batch.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	keys := make([]string, 0, len(files))
	for _, info := range files {
		key, err := c.key(info.Level, info.MinTXID, info.MaxTXID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, key)
	}
	for batch := range slices.Chunk(keys, deleteBatch) {
		if err := c.deleteBatch(ctx, batch); err != nil {
			errs = append(errs, err) // stop: the caller's order keeps what is left restorable
			break
		}
	}
	return errors.Join(errs...)
}

// deleteBatch removes keys with one DeleteObjects request and returns the
// first failure, ignoring missing keys.
func (c *Client) deleteBatch(ctx context.Context, keys []string) error {
	objs := func(yield func(minio.ObjectInfo) bool) {
		for _, k := range keys {
			if !yield(minio.ObjectInfo{Key: k}) {
				return
			}
		}
	}
	results, err := c.mc.RemoveObjectsWithIter(ctx, c.cfg.Bucket, objs, minio.RemoveObjectsOptions{})
	if err != nil {
		return fmt.Errorf("s3: delete %d objects from %s: %w", len(keys), c.cfg.Bucket, classify(err))
	}
	var first error
	failed := 0
	for res := range results {
		if res.Err == nil || minio.ToErrorResponse(res.Err).Code == "NoSuchKey" {
			continue
		}
		if failed == 0 {
			first = fmt.Errorf("s3: delete %s/%s: %w", c.cfg.Bucket, res.ObjectName, classify(res.Err))
		}
		failed++
	}
	if err := ctx.Err(); err != nil && first == nil {
		return fmt.Errorf("s3: delete %d objects from %s: %w", len(keys), c.cfg.Bucket, err)
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more)", first, failed-1)
	}
	return first
}

// ctxReader stops a read when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// countingReader counts the bytes read and remembers the first error other
// than io.EOF.
// sizedReaderAt is a source of known size readable at any offset, such
// as the *io.SectionReader of a spool entry.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

type countingReader struct {
	r   io.Reader
	n   int64 // bytes
	err error
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}
