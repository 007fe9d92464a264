package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The CA is created once, keys 0600, and the same CA is loaded again.
func TestCAKeptAcrossStarts(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := LoadOrCreateCA(dir, "test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.PublicKeyAlgorithm != x509.ECDSA || !ca.Cert.IsCA || ca.Key.Curve.Params().Name != "P-256" {
		t.Errorf("CA %v IsCA %v curve %s", ca.Cert.PublicKeyAlgorithm, ca.Cert.IsCA, ca.Key.Curve.Params().Name)
	}
	for f, mode := range map[string]os.FileMode{CAKeyFile: 0o600, CACertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", f, err, fi.Mode().Perm(), mode)
		}
	}
	again, err := LoadOrCreateCA(dir, "test CA", now.Add(time.Hour))
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("CA not kept: %v", err)
	}
	// A certificate without its key is an error, not a new CA.
	os.Remove(filepath.Join(dir, CAKeyFile))
	if _, err := LoadOrCreateCA(dir, "test CA", now); err == nil {
		t.Fatal("a CA certificate without its key replaced silently")
	}
}

// The server certificate names exactly the configured names, verifies
// against the CA, and is renewed when RenewBefore of it is left, when the
// names change, or when another CA signed it.
func TestServerCertRenewal(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, _ := LoadOrCreateCA(dir, "test CA", now)
	names := []string{"localhost", "127.0.0.1"}
	c, renewed, err := ServerCert(dir, ca, names, now)
	if err != nil || !renewed {
		t.Fatalf("first: renewed %v, %v", renewed, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, ServerKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server key mode: %v %v", fi.Mode().Perm(), err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, n := range names {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: n, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example", CurrentTime: now}); err == nil {
		t.Error("certificate valid for a name not configured")
	}
	if _, renewed, _ := ServerCert(dir, ca, names, now.Add(24*time.Hour)); renewed {
		t.Error("renewed a certificate with months left")
	}
	late := now.Add(ServerValidity - RenewBefore + time.Hour)
	c2, renewed, err := ServerCert(dir, ca, names, late)
	if err != nil || !renewed || !c2.Leaf.NotAfter.After(c.Leaf.NotAfter) {
		t.Fatalf("not renewed %v before expiry: %v", RenewBefore, err)
	}
	if _, renewed, _ := ServerCert(dir, ca, []string{"localhost", "127.0.0.1", "hub.asl.example"}, late); !renewed {
		t.Error("not renewed for a new name")
	}
	other, _ := LoadOrCreateCA(t.TempDir(), "other", now)
	if _, renewed, _ := ServerCert(dir, other, []string{"localhost", "127.0.0.1", "hub.asl.example"}, late); !renewed {
		t.Error("not reissued by a new CA")
	}
}

// The Server swaps a renewed certificate in for new handshakes.
func TestServerRenewSwaps(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, _ := LoadOrCreateCA(dir, "test CA", now)
	s, err := NewServer(CASource(dir, ca, []string{"127.0.0.1"}), now)
	if err != nil {
		t.Fatal(err)
	}
	first := s.Current().Leaf.SerialNumber
	if renewed, err := s.Renew(now.Add(ServerValidity - RenewBefore + time.Hour)); err != nil || !renewed {
		t.Fatalf("renew: %v %v", renewed, err)
	}
	got, _ := s.Config().GetCertificate(&tls.ClientHelloInfo{})
	if got.Leaf.SerialNumber.Cmp(first) == 0 {
		t.Error("handshakes still get the old certificate")
	}
}

// Config checks the server name, reads the CA file, and gives nil for a
// plain URL; Explain names the CA file and the broker.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	ca, _ := LoadOrCreateCA(dir, "test CA", time.Now())
	caFile := filepath.Join(dir, CACertFile)
	cfg, err := Client{CAFile: caFile}.Config("mqtts://hub.example:8883")
	if err != nil || cfg == nil || cfg.ServerName != "hub.example" || cfg.InsecureSkipVerify || cfg.RootCAs == nil {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	if cfg, err := (Client{CAFile: caFile}).Config("mqtt://127.0.0.1:1883"); cfg != nil || err != nil {
		t.Errorf("plain URL: %v %v", cfg, err)
	}
	if _, err := (Client{CAFile: filepath.Join(dir, "missing.pem")}).Config("mqtts://h:1"); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("junk"), 0o644)
	if _, err := (Client{CAFile: filepath.Join(dir, "junk.pem")}).Config("mqtts://h:1"); err == nil {
		t.Error("a CA file without a certificate accepted")
	}
	if _, err := (Client{CAFile: caFile, CertFile: "c.pem"}).Config("mqtts://h:1"); err == nil {
		t.Error("cert_file without key_file accepted")
	}
	// mTLS: a client certificate from the CA is loaded.
	certPEM, keyPEM, err := ca.Issue([]string{"demo-01"}, true, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "c.key"), keyPEM, 0o600)
	if cfg, err := (Client{CAFile: caFile, CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "c.key")}).Config("mqtts://h:1"); err != nil || len(cfg.Certificates) != 1 {
		t.Errorf("client certificate: %v", err)
	}
	plain := errors.New("dial tcp: connection refused")
	if Explain(plain, "h:1", caFile) != plain {
		t.Error("Explain changed a network error")
	}
}

// A client with cert_file/key_file from the CA passes a broker that asks
// for a client certificate (mutual TLS, as mosquitto's
// require_certificate); one without is refused.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, _ := LoadOrCreateCA(dir, "test CA", now)
	srv, err := NewServer(CASource(dir, ca, []string{"127.0.0.1"}), now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = x509.NewCertPool()
	cfg.ClientCAs.AddCert(ca.Cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Write([]byte("ok"))
				c.Close()
			}()
		}
	}()
	certPEM, keyPEM, _ := ca.Issue([]string{"demo-01"}, true, time.Hour, now)
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "c.key"), keyPEM, 0o600)
	url := "mqtts://" + ln.Addr().String()
	for _, tc := range []struct {
		name string
		c    Client
		ok   bool
	}{
		{"with certificate", Client{CAFile: filepath.Join(dir, CACertFile), CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "c.key")}, true},
		{"without", Client{CAFile: filepath.Join(dir, CACertFile)}, false},
	} {
		ccfg, err := tc.c.Config(url)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
		var got []byte
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, _ = io.ReadAll(c)
			c.Close()
		}
		if (string(got) == "ok") != tc.ok {
			t.Errorf("%s: read %q, %v; want ok %v", tc.name, got, err, tc.ok)
		}
	}
}
