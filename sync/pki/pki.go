// Package pki is the fleet's TLS: the private certificate authority the hub
// creates at its first start, the broker's server certificate it issues
// and renews, and the one client configuration every program (totemd,
// totemctl, the hub as a client of an external broker) builds its
// connection with, so the server name is checked the same way everywhere.
//
// Keys are ECDSA P-256, certificates stdlib crypto/x509: a private CA and
// a server certificate need nothing else. Private keys are written 0600;
// the CA certificate is public, given to every client as its ca_file.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aslcns/totem/internal/atomicfile"
)

// Validity of what the hub issues. The server certificate is renewed when
// less than RenewBefore of it is left, at start and by Renewer.
const (
	CAValidity     = 20 * 365 * 24 * time.Hour
	ServerValidity = 90 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
)

// Files in the hub's state directory.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server.key"
)

// CA is a certificate authority: its certificate and key.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     *ecdsa.PrivateKey
}

// LoadOrCreateCA loads the CA kept in dir (ca.pem, ca.key), creating it if
// neither file exists. One without the other is an error: silently making
// a new CA would break every client that trusts the old one.
func LoadOrCreateCA(dir, name string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
		return createCA(dir, name, now)
	case cerr != nil:
		return nil, fmt.Errorf("pki: %w", cerr)
	case kerr != nil:
		return nil, fmt.Errorf("pki: %w", kerr)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA in %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: CA key %s is not ECDSA", keyPath)
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	return &CA{Cert: pair.Leaf, CertPEM: certPEM, Key: key}, nil
}

func createCA(dir, name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour), // a client clock slightly behind
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a certificate without its key is refused at the
	// next start rather than replaced.
	if err := WriteFile(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFile(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: certPEM, Key: key}, nil
}

// Issue returns a certificate and its new key for names (DNS names or IP
// addresses), valid for validity from now, in PEM. A server certificate,
// unless client: then one for a client's mutual TLS.
func (ca *CA) Issue(names []string, client bool, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("pki: a certificate needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// ServerCert returns the broker's certificate kept in dir (server.pem,
// server.key), issuing a new one when there is none, when less than
// RenewBefore of it is left, when it does not name exactly names or when
// ca did not sign it. renewed says a new one was written.
func ServerCert(dir string, ca *CA, names []string, now time.Time) (cert *tls.Certificate, renewed bool, err error) {
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && current(pair.Leaf, ca, names, now) {
		return &pair, false, nil
	}
	certPEM, keyPEM, err := ca.Issue(names, false, ServerValidity, now)
	if err != nil {
		return nil, false, err
	}
	if err := WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, false, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("pki: %w", err)
	}
	return &pair, true, nil
}

// current reports whether leaf, signed by ca, names exactly names and has
// more than RenewBefore left.
func current(leaf *x509.Certificate, ca *CA, names []string, now time.Time) bool {
	if leaf == nil || leaf.CheckSignatureFrom(ca.Cert) != nil || leaf.NotAfter.Sub(now) < RenewBefore {
		return false
	}
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	want := make([]string, 0, len(names))
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		want = append(want, n)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail (Go ≥ 1.24)
	}
	return n
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFile writes data to path atomically (temporary file, sync, rename)
// with mode perm, creating the directory (0700) if needed. An identical
// file is left alone.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == perm {
			return nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.Write(path, data, perm, "."+filepath.Base(path)+".tmp*"); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}
