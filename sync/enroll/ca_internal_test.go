package enroll

import (
	"bytes"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/pki"
)

func testChain(t *testing.T, dir string) (*pki.CA, []*x509.Certificate) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(dir, "CA "+filepath.Base(dir), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := pki.ServerCert(dir, ca, []string{"127.0.0.1", "hub.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca, []*x509.Certificate{cert.Leaf}
}

// checkCA accepts the hub's answer only when its MAC checks against the
// typed code for this totem, this nonce and this CA, and the chain the
// connection presented verifies against that CA for the broker's name;
// parameters out of bounds are refused before any argon2id.
func TestCheckCA(t *testing.T) {
	ca, chain := testChain(t, filepath.Join(t.TempDir(), "hub"))
	other, otherChain := testChain(t, filepath.Join(t.TempDir(), "other"))
	const code = "K7QM2XPA9RTD"
	v, err := NewVerifier("t-1", code)
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{7}, NonceLen)
	answer := func(der []byte) Reply {
		return Reply{V: 1, OK: true, CA: der, Salt: v.Salt, KDF: &v.KDF, MAC: CAMAC(v.Key, nonce, der, "t-1")}
	}
	good := answer(ca.Cert.Raw)
	got, err := checkCA(good, "t-1", code, nonce, chain, "hub.example")
	if err != nil || !bytes.Equal(got, ca.CertPEM) {
		t.Fatalf("a true answer: %v\n%s", err, got)
	}
	mismatch := func(name string, r Reply, totem, code string, nonce []byte, chain []*x509.Certificate, server string) {
		t.Helper()
		if got, err := checkCA(r, totem, code, nonce, chain, server); ReasonOf(err) != ReasonMismatch || got != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	mismatch("another code", good, "t-1", "K7QM2XPA9RTE", nonce, chain, "hub.example")
	mismatch("another totem", good, "t-2", code, nonce, chain, "hub.example")
	mismatch("another nonce", good, "t-1", code, bytes.Repeat([]byte{8}, NonceLen), chain, "hub.example")
	swapped := good
	swapped.CA = other.Cert.Raw // the middle's CA under the hub's MAC
	mismatch("another CA", swapped, "t-1", code, nonce, otherChain, "hub.example")
	mismatch("the middle's chain", good, "t-1", code, nonce, otherChain, "hub.example")
	mismatch("another name", good, "t-1", code, nonce, chain, "evil.example")

	notCA := answer(chain[0].Raw)
	if _, err := checkCA(notCA, "t-1", code, nonce, chain, "hub.example"); err == nil || !strings.Contains(err.Error(), "no CA certificate") {
		t.Errorf("a leaf as CA: %v", err)
	}
	for _, k := range []KDF{{Time: 1, Memory: 1 << 30, Threads: 4}, {Time: 1, Memory: 1024, Threads: 1}, {Time: 100, Memory: 64 * 1024, Threads: 1}, {Time: 1, Memory: 64 * 1024, Threads: 0}} {
		r := good
		r.KDF = &k
		if _, err := checkCA(r, "t-1", code, nonce, chain, "hub.example"); err == nil || !strings.Contains(err.Error(), "out of bounds") {
			t.Errorf("parameters %+v: %v", k, err)
		}
	}
	short := good
	short.MAC = short.MAC[:16]
	if _, err := checkCA(short, "t-1", code, nonce, chain, "hub.example"); err == nil {
		t.Error("a short MAC accepted")
	}
}
