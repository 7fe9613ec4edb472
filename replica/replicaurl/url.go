package replicaurl

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
)

// Opener returns a client for a parsed replica URL of its scheme. It must
// reject any part of u it does not understand (host, user, query
// parameters, fragment) with an error wrapping replica.ErrInvalidURL.
type Opener func(u *url.URL) (replica.Client, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{
		"file": openFile,
		"s3":   openS3,
	}
)

// Register makes Open use fn for URLs with scheme (case-insensitive),
// replacing any earlier registration. Safe for concurrent use.
func Register(scheme string, fn Opener) {
	mu.Lock()
	defer mu.Unlock()
	openers[strings.ToLower(scheme)] = fn
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// schemeRE matches a URL scheme followed by "://" (RFC 3986 section 3.1).
var schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// Open returns a client for the replica at raw: a URL "scheme://..." whose
// scheme is registered, or a plain path (relative paths are made absolute)
// for a file replica. Errors wrap replica.ErrInvalidURL and name the part
// of raw that cannot be used.
func Open(raw string) (replica.Client, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%w: empty", replica.ErrInvalidURL)
	}
	m := schemeRE.FindStringSubmatch(raw)
	if m == nil {
		if strings.HasPrefix(strings.ToLower(raw), "file:") {
			return nil, fmt.Errorf("%w: %q: file URLs take the form file:///abs/dir", replica.ErrInvalidURL, raw)
		}
		if strings.ContainsRune(raw, 0) {
			return nil, fmt.Errorf("%w: %q: path contains a NUL byte", replica.ErrInvalidURL, raw)
		}
		return openPath(raw)
	}

	scheme := strings.ToLower(m[1])
	mu.RLock()
	fn, ok := openers[scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q: unknown scheme %q (known: %s)",
			replica.ErrInvalidURL, raw, scheme, strings.Join(Schemes(), ", "))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", replica.ErrInvalidURL, err)
	}
	return fn(u)
}

// openFile opens a "file:///abs/dir" URL.
func openFile(u *url.URL) (replica.Client, error) {
	switch {
	case u.Host != "" && u.Host != "localhost":
		return nil, fmt.Errorf("%w: %q: file URL has host %q; use file:///abs/dir", replica.ErrInvalidURL, u.Redacted(), u.Host)
	case u.User != nil:
		return nil, fmt.Errorf("%w: %q: file URL has user info", replica.ErrInvalidURL, u.Redacted())
	case u.Fragment != "":
		return nil, fmt.Errorf("%w: %q: file URL has fragment %q", replica.ErrInvalidURL, u.Redacted(), u.Fragment)
	}
	if err := checkQuery(u); err != nil {
		return nil, err
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return nil, fmt.Errorf("%w: %q: file URL has no absolute path", replica.ErrInvalidURL, u.Redacted())
	}
	if strings.ContainsRune(u.Path, 0) {
		return nil, fmt.Errorf("%w: %q: path contains a NUL byte", replica.ErrInvalidURL, u.Redacted())
	}
	return file.NewClient(filepath.FromSlash(u.Path)), nil
}

// openPath opens a plain directory path.
func openPath(path string) (replica.Client, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", replica.ErrInvalidURL, path, err)
	}
	return file.NewClient(abs), nil
}

// checkQuery rejects query parameters other than known ones, naming the
// first unknown parameter in sorted order.
func checkQuery(u *url.URL, known ...string) error {
	if u.RawQuery == "" && !u.ForceQuery {
		return nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: %q: query %q: %w", replica.ErrInvalidURL, u.Redacted(), u.RawQuery, err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return fmt.Errorf("%w: %q: unknown query parameter %q for %s replica", replica.ErrInvalidURL, u.Redacted(), k, u.Scheme)
		}
	}
	if len(keys) == 0 && u.RawQuery != "" {
		return fmt.Errorf("%w: %q: unusable query %q", replica.ErrInvalidURL, u.Redacted(), u.RawQuery)
	}
	return nil
}
