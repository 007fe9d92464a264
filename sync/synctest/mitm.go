package synctest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/sync/pki"
)

// MITM is a man in the middle on loopback: a TLS server with a
// certificate of its own (from a CA of its own) for the same name,
// 127.0.0.1, that forwards the plaintext to the real broker over TLS and
// keeps what the client sent.
type MITM struct {
	ln  net.Listener
	mu  sync.Mutex
	buf bytes.Buffer // the plaintext the client sent
}

// StartMITM relays to target, a TLS listener whose certificate targetCA
// issued, until the test ends.
func StartMITM(t *testing.T, target string, targetCA *x509.Certificate) *MITM {
	t.Helper()
	_, cert := ServerCert(t, t.TempDir(), "middle CA", time.Now())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cert.Config())
	if err != nil {
		t.Fatal(err)
	}
	m := &MITM{ln: ln}
	roots := x509.NewCertPool()
	roots.AddCert(targetCA)
	wait := goset.Accept(ln, func(c net.Conn) {
		up, err := tls.Dial("tcp", target, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err != nil {
			c.Close()
			return
		}
		sent := make(chan struct{})
		go func() { _, _ = io.Copy(up, io.TeeReader(c, m)); up.Close(); close(sent) }()
		_, _ = io.Copy(c, up)
		c.Close()
		<-sent
	})
	t.Cleanup(func() { ln.Close(); wait() })
	return m
}

func (m *MITM) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.Write(p)
}

// Captured is the plaintext the clients sent so far.
func (m *MITM) Captured() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.buf.Bytes())
}

// Addr is the relay's address.
func (m *MITM) Addr() string { return m.ln.Addr().String() }

// ServerCert makes a CA called name in dir (its certificate in
// dir/pki.CACertFile) and a server certificate it issues for 127.0.0.1,
// as the hub does.
func ServerCert(t testing.TB, dir, name string, now time.Time) (*pki.CA, *pki.Server) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(dir, name, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewServer(pki.CASource(dir, ca, []string{"127.0.0.1"}), now)
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert
}
