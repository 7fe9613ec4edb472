package s3

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Transport timeouts. Dialing an unreachable store fails fast; a store that
// accepted the connection gets longer to start answering.
const (
	dialTimeout           = 5 * time.Second
	responseHeaderTimeout = 30 * time.Second
)

// NewTransport returns the *http.Transport NewClient builds for cfg when
// cfg.Transport is nil, for an endpoint reached over https when secure: the
// proxy and TLS rules of the package doc, a 5 s dial timeout and a 30 s
// response header timeout. Only cfg.CAFile and cfg.SkipVerify are used.
// Tests wrap it.
func NewTransport(cfg Config, secure bool) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = responseHeaderTimeout
	tr.MaxIdleConnsPerHost = 16
	// Objects are stored as written; never let the transport decode a
	// Content-Encoding: gzip body behind our back.
	tr.DisableCompression = true

	// Only https endpoints use the environment's proxy; plain http (a local
	// MinIO) always connects directly.
	tr.Proxy = nil
	if secure {
		tr.Proxy = http.ProxyFromEnvironment
	}

	pool, err := rootCAs(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            pool,
		InsecureSkipVerify: cfg.SkipVerify, //nolint:gosec // opt-in, warned about in NewClient
	}
	return tr, nil
}

// rootCAs returns the system pool plus the PEM certificates in caFile, if
// not empty. It never consults AWS_CA_BUNDLE or similar variables.
func rootCAs(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s3: read ca file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3: read ca file %s: no PEM certificates found", caFile)
	}
	return pool, nil
}
