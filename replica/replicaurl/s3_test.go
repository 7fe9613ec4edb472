package replicaurl_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/litestream-vfs/litestream_vfs/replica"
	"github.com/litestream-vfs/litestream_vfs/replica/replicaurl"
	"github.com/litestream-vfs/litestream_vfs/replica/s3"
	"github.com/litestream-vfs/litestream_vfs/replica/s3/s3test"
)

// s3Env lists every environment variable S3 URLs read.
var s3Env = []string{
	"AWS_ENDPOINT_URL_S3", "AWS_REGION",
	"LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}

// setS3Env clears the S3 environment variables, then sets env.
func setS3Env(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range s3Env {
		t.Setenv(k, env[k])
	}
	for k := range env {
		if !slices.Contains(s3Env, k) {
			t.Fatalf("setS3Env: %s is not an S3 variable", k)
		}
	}
}

func TestS3Config(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		env  map[string]string
		want s3.Config
	}{
		{"Defaults", "s3://bkt/db", nil,
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "us-east-1"}},
		{"NoPrefix", "s3://bkt", nil,
			s3.Config{Bucket: "bkt", Region: "us-east-1"}},
		{"NestedPrefix", "S3://bkt/a/b/", nil,
			s3.Config{Bucket: "bkt", Prefix: "a/b", Region: "us-east-1"}},
		{"EscapedPrefix", "s3://bkt/my%20db", nil,
			s3.Config{Bucket: "bkt", Prefix: "my db", Region: "us-east-1"}},
		{"Endpoint", "s3://bkt/db?endpoint=http://127.0.0.1:9000", nil,
			s3.Config{Bucket: "bkt", Prefix: "db", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", ForcePathStyle: true}},
		{"EndpointVirtualHost", "s3://bkt/db?endpoint=https://h&force-path-style=false", nil,
			s3.Config{Bucket: "bkt", Prefix: "db", Endpoint: "https://h", Region: "us-east-1"}},
		{"AWSPathStyle", "s3://bkt/db?force-path-style=1", nil,
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "us-east-1", ForcePathStyle: true}},
		{"TLSParams", "s3://bkt/db?endpoint=https://h&ca={ca}&skip-verify=true", nil,
			s3.Config{Bucket: "bkt", Prefix: "db", Endpoint: "https://h", Region: "us-east-1", ForcePathStyle: true, CAFile: "{ca}", SkipVerify: true}},
		{"EndpointFromEnv", "s3://bkt/db", map[string]string{"AWS_ENDPOINT_URL_S3": "http://minio:9000"},
			s3.Config{Bucket: "bkt", Prefix: "db", Endpoint: "http://minio:9000", Region: "us-east-1", ForcePathStyle: true}},
		{"EndpointParamOverEnv", "s3://bkt/db?endpoint=http://a:1", map[string]string{"AWS_ENDPOINT_URL_S3": "http://b:2"},
			s3.Config{Bucket: "bkt", Prefix: "db", Endpoint: "http://a:1", Region: "us-east-1", ForcePathStyle: true}},
		{"RegionFromEnv", "s3://bkt/db", map[string]string{"AWS_REGION": "eu-west-3"},
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "eu-west-3"}},
		{"RegionParamOverEnv", "s3://bkt/db?region=ap-south-1", map[string]string{"AWS_REGION": "eu-west-3"},
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "ap-south-1"}},
		{"AWSCredentials", "s3://bkt/db", map[string]string{
			"AWS_ACCESS_KEY_ID": "aws-id", "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_SESSION_TOKEN": "aws-token"},
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "us-east-1", AccessKeyID: "aws-id", SecretAccessKey: "aws-secret", SessionToken: "aws-token"}},
		{"LitestreamCredentialsWin", "s3://bkt/db", map[string]string{
			"LITESTREAM_ACCESS_KEY_ID": "ls-id", "LITESTREAM_SECRET_ACCESS_KEY": "ls-secret",
			"AWS_ACCESS_KEY_ID": "aws-id", "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_SESSION_TOKEN": "aws-token"},
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "us-east-1", AccessKeyID: "ls-id", SecretAccessKey: "ls-secret"}},
		{"LitestreamIDOnlyIgnored", "s3://bkt/db", map[string]string{
			"LITESTREAM_ACCESS_KEY_ID": "ls-id",
			"AWS_ACCESS_KEY_ID":        "aws-id", "AWS_SECRET_ACCESS_KEY": "aws-secret"},
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "us-east-1", AccessKeyID: "aws-id", SecretAccessKey: "aws-secret"}},
		{"LitestreamSecretOnlyIgnored", "s3://bkt/db", map[string]string{
			"LITESTREAM_SECRET_ACCESS_KEY": "ls-secret"},
			s3.Config{Bucket: "bkt", Prefix: "db", Region: "us-east-1"}},
	}
	_, caFile := s3test.WriteCerts(t, t.TempDir()) // a real CA file for "{ca}"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setS3Env(t, tt.env)
			tt.raw = strings.ReplaceAll(tt.raw, "{ca}", caFile)
			tt.want.CAFile = strings.ReplaceAll(tt.want.CAFile, "{ca}", caFile)
			got, err := replicaurl.S3Config(tt.raw)
			if err != nil {
				t.Fatalf("S3Config(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Fatalf("S3Config(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}

			c, err := replicaurl.Open(tt.raw)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.raw, err)
			}
			sc, ok := c.(*s3.Client)
			if !ok {
				t.Fatalf("Open(%q) = %T, want *s3.Client", tt.raw, c)
			}
			if sc.Type() != "s3" || sc.Bucket() != tt.want.Bucket || sc.Prefix() != tt.want.Prefix {
				t.Fatalf("Open(%q) = %s bucket %q prefix %q", tt.raw, sc.Type(), sc.Bucket(), sc.Prefix())
			}
			for _, v := range tt.env {
				if strings.Contains(v, "secret") && strings.Contains(sc.String(), v) {
					t.Fatalf("String()=%q contains a secret", sc.String())
				}
			}
		})
	}
}

func TestS3String(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"s3://bkt/db", "s3://bkt/db?region=us-east-1"},
		{"s3://bkt/db?endpoint=http://127.0.0.1:9000", "s3://bkt/db?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1"},
		{"s3://bkt/db?endpoint=https://h&force-path-style=false", "s3://bkt/db?endpoint=https%3A%2F%2Fh&force-path-style=false&region=us-east-1"},
		{"s3://bkt/?region=eu-west-1&force-path-style=true", "s3://bkt?force-path-style=true&region=eu-west-1"},
	}
	setS3Env(t, map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "hunter2"})
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := replicaurl.Open(tt.raw)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.raw, err)
			}
			if got := c.String(); got != tt.want {
				t.Fatalf("Open(%q).String()=%q, want %q", tt.raw, got, tt.want)
			}
			c2, err := replicaurl.Open(c.String())
			if err != nil || c2.String() != c.String() {
				t.Fatalf("reopen %q: %v, %v", c.String(), c2, err)
			}
		})
	}
}

func TestS3Params(t *testing.T) {
	want := []string{"endpoint", "region", "force-path-style", "ca", "skip-verify"}
	if got := replicaurl.S3Params(); !slices.Equal(got, want) {
		t.Fatalf("S3Params()=%v, want %v", got, want)
	}
	// Every listed parameter is accepted.
	raw := "s3://bkt/db?endpoint=http://h:1&region=r&force-path-style=true&ca=/x.pem&skip-verify=false"
	if _, err := replicaurl.S3Config(raw); err != nil {
		t.Fatalf("S3Config(%q): %v", raw, err)
	}
}

func TestOpenS3Invalid(t *testing.T) {
	setS3Env(t, map[string]string{"AWS_SECRET_ACCESS_KEY": "hunter2"})
	tests := []struct {
		name string
		raw  string
		want string // must appear in the error
	}{
		{"UnknownParam", "s3://bkt/db?sync-interval=1s", `unknown query parameter "sync-interval"`},
		{"UnknownParamCase", "s3://bkt/db?Region=x", `unknown query parameter "Region"`},
		{"BadForcePathStyle", "s3://bkt/db?force-path-style=maybe", `"force-path-style": "maybe" is not true or false`},
		{"BadSkipVerify", "s3://bkt/db?skip-verify=yes", `"skip-verify": "yes"`},
		{"RepeatedParam", "s3://bkt/db?region=a&region=b", `"region" given 2 times`},
		{"EmptyParam", "s3://bkt/db?region=", `"region" is empty`},
		{"NoBucket", "s3:///db", "no bucket"},
		{"BucketPort", "s3://bkt:9000/db", "has a port"},
		{"UserInfo", "s3://id:hunter2@bkt/db", "user info"},
		{"DotDot", "s3://bkt/../../x", `path segment ".."`},
		{"Dot", "s3://bkt/a/./b", `path segment "."`},
		{"Fragment", "s3://bkt/db#x", `fragment "x"`},
		{"BadBucket", "s3://b/db", `bucket "b"`},
		{"BadEndpoint", "s3://bkt/db?endpoint=ftp://h", "scheme must be http or https"},
		{"MissingCA", "s3://bkt/db?ca=/nonexistent/ca.pem", "read ca file"},
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
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("Open(%q) err=%q contains a secret", tt.raw, err)
			}
		})
	}
}
