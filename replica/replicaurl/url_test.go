package replicaurl_test

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/file"
	"github.com/litestream-vfs/litestream_vfs/replica/replicaurl"
	"github.com/litestream-vfs/litestream_vfs/replica/s3"
)

func TestOpen(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		raw     string
		wantDir string
	}{
		{"FileURL", "file:///var/lib/replica", "/var/lib/replica"},
		{"FileURLUpperScheme", "FILE:///var/lib/replica", "/var/lib/replica"},
		{"FileURLLocalhost", "file://localhost/var/lib/replica", "/var/lib/replica"},
		{"FileURLTrailingSlash", "file:///var/lib/replica/", "/var/lib/replica"},
		{"FileURLEscaped", "file:///var/lib/my%20replica", "/var/lib/my replica"},
		{"FileURLDotDot", "file:///var/lib/../replica", "/var/replica"},
		{"AbsPath", "/srv/replica", "/srv/replica"},
		{"RelPath", "replica", filepath.Join(wd, "replica")},
		{"RelPathDot", "./a/../b", filepath.Join(wd, "b")},
		{"PathWithColon", "data:backup", filepath.Join(wd, "data:backup")},
		{"PathWithQuestionMark", "/srv/why?", "/srv/why?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := replicaurl.Open(tt.raw)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.raw, err)
			}
			fc, ok := c.(*file.Client)
			if !ok {
				t.Fatalf("Open(%q) = %T, want *file.Client", tt.raw, c)
			}
			if got, want := fc.Dir(), tt.wantDir; got != want {
				t.Fatalf("Open(%q).Dir()=%q, want %q", tt.raw, got, want)
			}
			if got, want := c.Type(), "file"; got != want {
				t.Fatalf("Type()=%q, want %q", got, want)
			}
		})
	}
}

func TestOpenInvalid(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // must appear in the error
	}{
		{"Empty", "", "empty"},
		{"Blank", "  ", "empty"},
		{"FileHost", "file://host/x", `host "host"`},
		{"FileNoPath", "file://", "no absolute path"},
		{"FileOpaque", "file:relative/dir", "file:///abs/dir"},
		{"FileQuery", "file:///x?sync-interval=1s", `unknown query parameter "sync-interval"`},
		{"FileFragment", "file:///x#frag", `fragment "frag"`},
		{"FileUser", "file://bob@/x", "user info"},
		{"UnknownScheme", "gs://bucket/db", `unknown scheme "gs"`},
		{"S3UnknownParam", "s3://bucket/db?sync-interval=1s", `unknown query parameter "sync-interval"`},
		{"BadEscape", "file:///x%zz", "invalid URL escape"},
		{"NUL", "/tmp/a\x00b", "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := replicaurl.Open(tt.raw)
			if err == nil {
				t.Fatalf("Open(%q) = %v, want error", tt.raw, c)
			}
			if !errors.Is(err, replica.ErrInvalidURL) {
				t.Fatalf("Open(%q) err=%v, want ErrInvalidURL", tt.raw, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) err=%q, want it to mention %q", tt.raw, err, tt.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	var got *url.URL
	replicaurl.Register("Mem", func(u *url.URL) (replica.Client, error) {
		got = u
		return file.NewClient("/mem"), nil
	})
	if _, err := replicaurl.Open("mem://bucket/path?x=1"); err != nil {
		t.Fatalf("Open(mem://...): %v", err)
	}
	if got == nil || got.Host != "bucket" || got.Path != "/path" || got.Query().Get("x") != "1" {
		t.Fatalf("opener got %v, want mem://bucket/path?x=1", got)
	}
	found := false
	for _, s := range replicaurl.Schemes() {
		found = found || s == "mem"
	}
	if !found {
		t.Fatalf("Schemes()=%v, want it to include mem", replicaurl.Schemes())
	}
}

func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		"", "file:///a/b", "file://h/x", "s3://b/p?region=x", "rel", "/abs",
		"file:///x?a=1&b=2", "file:x", "%", "::", "a://", "file:///%zz", "file://[::1]/x",
		"s3://bucket", "s3://bucket/a/b/", "S3://Bucket/a%20b?region=eu-west-1",
		"s3://bucket/db?endpoint=http://127.0.0.1:9000&force-path-style=false",
		"s3://bucket/db?endpoint=https%3A%2F%2Fminio.local&skip-verify=1",
		"s3://bucket/db?region=a&region=b", "s3://bucket/db?force-path-style=maybe",
		"s3://key:secret@bucket/db", "s3://bucket:9000/db", "s3:///db", "s3://bucket/db#x",
		"s3://bucket/db?endpoint=ftp://h", "s3://bucket/db?ca=/nonexistent.pem",
		"s3://bucket/a/../../b", "s3://bucket/%ff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := replicaurl.Open(raw)
		if err != nil {
			if !errors.Is(err, replica.ErrInvalidURL) {
				t.Fatalf("Open(%q) err=%v, want ErrInvalidURL", raw, err)
			}
			return
		}
		if c == nil {
			t.Fatalf("Open(%q) returned nil client and nil error", raw)
		}
		if sc, ok := c.(*s3.Client); ok {
			// What Open accepts, String re-encodes: reopening gives the same URL.
			c2, err := replicaurl.Open(sc.String())
			if err != nil {
				t.Fatalf("Open(%q) = %q, which does not reopen: %v", raw, sc.String(), err)
			}
			if got, want := c2.String(), sc.String(); got != want {
				t.Fatalf("Open(%q) = %q, reopened as %q", raw, want, got)
			}
			return
		}
		fc, ok := c.(*file.Client)
		if !ok {
			return // a backend registered by another test
		}
		if !filepath.IsAbs(fc.Dir()) {
			t.Fatalf("Open(%q).Dir()=%q, want absolute", raw, fc.Dir())
		}
		_ = c.String()
	})
}
