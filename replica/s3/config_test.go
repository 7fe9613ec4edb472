package s3_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica/s3"
)

func TestClientString(t *testing.T) {
	creds := func(c s3.Config) s3.Config {
		c.AccessKeyID, c.SecretAccessKey, c.SessionToken = "AKIDEXAMPLE", "wJalrXUtnFEMI-secret", "session-token-secret"
		return c
	}
	tests := []struct {
		name string
		cfg  s3.Config
		want string
	}{
		{"AWS", s3.Config{Bucket: "bkt", Prefix: "db", Region: "eu-west-1"}, "s3://bkt/db?region=eu-west-1"},
		{"AWSNoRegion", s3.Config{Bucket: "bkt"}, "s3://bkt"},
		{"AWSPathStyle", s3.Config{Bucket: "bkt", ForcePathStyle: true}, "s3://bkt?force-path-style=true"},
		{"MinIO", s3.Config{Bucket: "bkt", Prefix: "/x/y/", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", ForcePathStyle: true},
			"s3://bkt/x/y?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1"},
		{"EndpointVirtualHost", s3.Config{Bucket: "bkt", Endpoint: "https://r2.example.com/"},
			"s3://bkt?endpoint=https%3A%2F%2Fr2.example.com&force-path-style=false"},
		{"PrefixCleaned", s3.Config{Bucket: "bkt", Prefix: "a//b/../c/"}, "s3://bkt/a/c"},
		{"PrefixEscaped", s3.Config{Bucket: "bkt", Prefix: "a b?c#d"}, "s3://bkt/a%20b%3Fc%23d"},
		{"BareHost", s3.Config{Bucket: "bkt", Endpoint: "minio.local:9000", ForcePathStyle: true},
			"s3://bkt?endpoint=https%3A%2F%2Fminio.local%3A9000"},
		{"TLSOptions", s3.Config{Bucket: "bkt", Endpoint: "https://h", ForcePathStyle: true, SkipVerify: true},
			"s3://bkt?endpoint=https%3A%2F%2Fh&skip-verify=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := creds(tt.cfg)
			cfg.Logger = slog.New(slog.DiscardHandler)
			c, err := s3.NewClient(cfg)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			if got := c.String(); got != tt.want {
				t.Fatalf("String()=%q, want %q", got, tt.want)
			}
			for _, secret := range []string{"wJalrXUtnFEMI-secret", "session-token-secret"} {
				if strings.Contains(c.String(), secret) {
					t.Fatalf("String()=%q contains a secret", c.String())
				}
			}
			if got, want := c.Type(), "s3"; got != want {
				t.Fatalf("Type()=%q, want %q", got, want)
			}
		})
	}
}

func TestNewClientInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  s3.Config
		want string // must appear in the error
	}{
		{"NoBucket", s3.Config{}, "no bucket"},
		{"BadBucket", s3.Config{Bucket: "b"}, `bucket "b"`},
		{"BadScheme", s3.Config{Bucket: "bkt", Endpoint: "ftp://h"}, "scheme must be http or https"},
		{"NoHost", s3.Config{Bucket: "bkt", Endpoint: "http://"}, "no host"},
		{"UserInfo", s3.Config{Bucket: "bkt", Endpoint: "http://key:hunter2@h"}, "user info"},
		{"Path", s3.Config{Bucket: "bkt", Endpoint: "http://h/path"}, "only scheme://host[:port]"},
		{"PathWithPassword", s3.Config{Bucket: "bkt", Endpoint: "http://k:hunter2@h/path"}, "user info"},
		{"ParseErrorWithPassword", s3.Config{Bucket: "bkt", Endpoint: "http://k:hunter2@h/%zz"}, "parse endpoint"},
		{"PrefixNotUTF8", s3.Config{Bucket: "bkt", Prefix: "a\xff"}, "not valid UTF-8"},
		{"MissingCAFile", s3.Config{Bucket: "bkt", CAFile: "/nonexistent/ca.pem"}, "read ca file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s3.NewClient(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient err=%v, want it to mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "s3: ") {
				t.Fatalf("NewClient err=%q, want prefix \"s3: \"", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("NewClient err=%q contains a password", err)
			}
		})
	}
}

func TestNewTransport(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "/nonexistent/ca-bundle.pem")
	tests := []struct {
		name      string
		cfg       s3.Config
		secure    bool
		wantProxy bool
	}{
		{"PlainHTTPNoProxy", s3.Config{}, false, false},
		{"HTTPSProxyFromEnv", s3.Config{}, true, true},
		{"SkipVerify", s3.Config{SkipVerify: true}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := s3.NewTransport(tt.cfg, tt.secure)
			if err != nil {
				t.Fatalf("NewTransport: %v", err)
			}
			if got := tr.Proxy != nil; got != tt.wantProxy {
				t.Fatalf("proxy set=%v, want %v", got, tt.wantProxy)
			}
			if tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil {
				t.Fatal("no root CA pool")
			}
			if got := tr.TLSClientConfig.InsecureSkipVerify; got != tt.cfg.SkipVerify {
				t.Fatalf("InsecureSkipVerify=%v, want %v", got, tt.cfg.SkipVerify)
			}
			if !tr.DisableCompression {
				t.Fatal("DisableCompression=false, want true")
			}
		})
	}
}
