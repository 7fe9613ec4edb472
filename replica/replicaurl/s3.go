package replicaurl

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/s3"
)

// S3 URL query parameters.
const (
	s3ParamEndpoint       = "endpoint"
	s3ParamRegion         = "region"
	s3ParamForcePathStyle = "force-path-style"
	s3ParamCA             = "ca"
	s3ParamSkipVerify     = "skip-verify"
)

// DefaultS3Region is the region of an s3:// replica when neither the URL
// nor AWS_REGION names one.
const DefaultS3Region = "us-east-1"

// S3Params returns the names of the query parameters an s3:// replica URL
// accepts, in the order documented in the package doc: endpoint, region,
// force-path-style, ca, skip-verify. The extension accepts the same names
// as SQLite URI parameters and passes them on in the replica URL.
func S3Params() []string {
	return []string{s3ParamEndpoint, s3ParamRegion, s3ParamForcePathStyle, s3ParamCA, s3ParamSkipVerify}
}

// S3Config returns the s3.Config for the s3:// replica URL raw, completed
// from the environment as described in the package doc. It does not
// contact the store or read the CA file. Errors wrap replica.ErrInvalidURL.
func S3Config(raw string) (s3.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return s3.Config{}, fmt.Errorf("%w: %w", replica.ErrInvalidURL, err)
	}
	if !strings.EqualFold(u.Scheme, "s3") {
		return s3.Config{}, fmt.Errorf("%w: %q: not an s3:// URL", replica.ErrInvalidURL, u.Redacted())
	}
	return s3ConfigFromURL(u)
}

// openS3 opens an "s3://BUCKET/PREFIX?..." URL.
func openS3(u *url.URL) (replica.Client, error) {
	cfg, err := s3ConfigFromURL(u)
	if err != nil {
		return nil, err
	}
	c, err := s3.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", replica.ErrInvalidURL, u.Redacted(), err)
	}
	return c, nil
}

// s3ConfigFromURL is S3Config for a parsed URL.
func s3ConfigFromURL(u *url.URL) (s3.Config, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %q: "+format, append([]any{replica.ErrInvalidURL, u.Redacted()}, args...)...)
	}
	switch {
	case u.Opaque != "":
		return s3.Config{}, invalid("s3 URLs take the form s3://BUCKET/PREFIX")
	case u.User != nil:
		return s3.Config{}, invalid("s3 URL has user info; pass credentials in the environment")
	case u.Host == "":
		return s3.Config{}, invalid("s3 URL has no bucket")
	case strings.Contains(u.Host, ":"):
		return s3.Config{}, invalid("s3 URL bucket %q has a port; use the endpoint parameter", u.Host)
	case u.Fragment != "":
		return s3.Config{}, invalid("s3 URL has fragment %q", u.Fragment)
	}
	if err := checkQuery(u, S3Params()...); err != nil {
		return s3.Config{}, err
	}
	q := u.Query()
	for k, vs := range q {
		if len(vs) > 1 {
			return s3.Config{}, invalid("query parameter %q given %d times", k, len(vs))
		}
		if vs[0] == "" {
			return s3.Config{}, invalid("query parameter %q is empty", k)
		}
	}

	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			// A key prefix is no path: cleaning it silently would put
			// the replica elsewhere than the URL says.
			return s3.Config{}, invalid("path segment %q in the key prefix", seg)
		}
	}
	cfg := s3.Config{
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Endpoint: cmp.Or(q.Get(s3ParamEndpoint), os.Getenv("AWS_ENDPOINT_URL_S3")),
		Region:   cmp.Or(q.Get(s3ParamRegion), os.Getenv("AWS_REGION"), DefaultS3Region),
		CAFile:   q.Get(s3ParamCA),
	}
	cfg.ForcePathStyle = cfg.Endpoint != ""
	for _, p := range []struct {
		name string
		dst  *bool
	}{
		{s3ParamForcePathStyle, &cfg.ForcePathStyle},
		{s3ParamSkipVerify, &cfg.SkipVerify},
	} {
		v, ok := q[p.name]
		if !ok {
			continue
		}
		b, err := strconv.ParseBool(v[0])
		if err != nil {
			return s3.Config{}, invalid("query parameter %q: %q is not true or false", p.name, v[0])
		}
		*p.dst = b
	}

	if id, secret := os.Getenv("LITESTREAM_ACCESS_KEY_ID"), os.Getenv("LITESTREAM_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		cfg.AccessKeyID, cfg.SecretAccessKey = id, secret
	} else {
		cfg.AccessKeyID = os.Getenv("AWS_ACCESS_KEY_ID")
		cfg.SecretAccessKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		cfg.SessionToken = os.Getenv("AWS_SESSION_TOKEN")
	}
	return cfg, nil
}
