package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/pki"
)

// The broker's TLS from the hub's private CA hands that CA (DER, as in
// ca.pem) to the enrollment of totems that have only their code; with the
// ASL's own certificate there is no CA to hand out.
func TestBrokerTLSHandsOutItsCA(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Totemhub{StateDir: filepath.Join(dir, "state")}
	cfg.Broker.TLSListen = "127.0.0.1:0"
	cfg.Broker.TLSNames = []string{"127.0.0.1"}
	cfg.Fleet.CredentialsDir = filepath.Join(dir, "creds")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tc, _, der, err := brokerTLS(cfg, log)
	if err != nil || tc == nil {
		t.Fatalf("brokerTLS: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Fleet.CredentialsDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := pem.Decode(b); p == nil || der == nil || !bytes.Equal(p.Bytes, der) {
		t.Fatalf("CA handed out %x, ca.pem %s", der, b)
	}

	// The ASL's own certificate: made here by another CA.
	asl, err := pki.LoadOrCreateCA(filepath.Join(dir, "asl"), "ASL", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.ServerCert(filepath.Join(dir, "asl"), asl, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg.Broker.TLSCertFile = filepath.Join(dir, "asl", pki.ServerCertFile)
	cfg.Broker.TLSKeyFile = filepath.Join(dir, "asl", pki.ServerKeyFile)
	if tc, _, der, err := brokerTLS(cfg, log); err != nil || tc == nil || der != nil {
		t.Fatalf("with the ASL's certificate: %v %x", err, der)
	}
}
