package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client is what a program's configuration says about its TLS to the
// broker: the CA file that vouches for the broker ("" = the system's
// roots, for a broker with a public certificate) and, for mutual TLS, the
// client's own certificate and key ("" = none).
type Client struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// TLSScheme reports whether a broker URL's scheme asks for TLS, as paho's
// autopaho reads it.
func TLSScheme(brokerURL string) bool {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "wss":
		return true
	}
	return false
}

// Config returns the client TLS configuration for brokerURL, nil for a
// plain URL. The server name is the URL's host and is always checked:
// a certificate for another name, or from another CA, fails the handshake.
func (c Client) Config(brokerURL string) (*tls.Config, error) {
	if !TLSScheme(brokerURL) {
		return nil, nil
	}
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, fmt.Errorf("pki: broker url: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("pki: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("pki: ca_file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("pki: cert_file and key_file go together")
	}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("pki: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Explain returns err as a sentence an operator can act on when it is a
// failed check of the broker's certificate (not signed by the CA in
// caFile, or not for the URL's host), naming the broker and the CA file;
// any other error is returned as it is.
func Explain(err error, broker, caFile string) error {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
	)
	if !errors.As(err, &cv) && !errors.As(err, &ua) && !errors.As(err, &he) {
		return err
	}
	from := "the system's certificate authorities"
	if caFile != "" {
		from = "the CA in " + caFile
	}
	switch {
	case errors.As(err, &he):
		return fmt.Errorf("the broker %s presented a certificate that is not for that name (%v): use one of its names in the URL, or add it to the hub's tls_names", broker, he)
	case errors.As(err, &ua):
		return fmt.Errorf("the broker %s presented a certificate not signed by %s: is ca_file the broker's CA (the hub writes ca.pem beside the credentials)? (%v)", broker, from, err)
	}
	return fmt.Errorf("the broker %s presented a certificate refused by %s: %w", broker, from, err)
}

// Dial opens the connection to the broker at u: plain TCP for mqtt:// and
// tcp://, TLS with cfg for mqtts://, ssl:// and tls://, a failed
// certificate check explained (Explain) with caFile.
func Dial(ctx context.Context, u *url.URL, cfg *tls.Config, caFile string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	switch u.Scheme {
	case "mqtt", "tcp":
		return d.DialContext(ctx, "tcp", u.Host)
	case "mqtts", "ssl", "tls":
		td := tls.Dialer{NetDialer: &d, Config: cfg}
		conn, err := td.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, Explain(err, u.Host, caFile)
		}
		return conn, nil
	}
	return nil, fmt.Errorf("broker url scheme %q", u.Scheme)
}
