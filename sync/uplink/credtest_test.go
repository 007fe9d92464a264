package uplink

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
)

// TestCredentials over TLS, many times: paho writes a packet in several
// Writes, and its pinger sends a PINGREQ from another goroutine at once
// after CONNECT; on a bare tls.Conn the two interleaved now and then and
// the broker read a malformed SUBSCRIBE ("did not answer"). The
// connection is wrapped thread safe, as autopaho's own dialler does. The
// race is timing-dependent: without the wrapper this failed in about half
// of the runs (-race), with it never. A wrong secret, another CA, expired
// and locked credentials give a KO verdict that says why.
func TestCredentialsOverTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	_, cert := synctest.ServerCert(t, dir, "test CA", now)
	reg, f, srv := registryBroker(t, dir, broker.Options{TLSListen: "127.0.0.1:0", TLS: cert.Config()})
	tlsCfg, err := pki.Client{CAFile: filepath.Join(dir, pki.CACertFile)}.Config(srv.TLSURL())
	if err != nil {
		t.Fatal(err)
	}
	test := func(o TestOptions) CredentialsReport {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return TestCredentials(ctx, o)
	}
	for i := range 40 {
		if r := test(TestOptions{URL: srv.TLSURL(), TLS: tlsCfg, Creds: f}); !r.OK || !strings.HasPrefix(r.Verdict, "OK: credentials of "+totem) {
			t.Fatalf("test %d: %s; broker %s", i, r.Verdict, srv.Stats())
		}
	}
	bad := f
	bad.Password += "x"
	if r := test(TestOptions{URL: srv.TLSURL(), TLS: tlsCfg, Creds: bad}); r.OK || !strings.Contains(r.Verdict, "0x86") {
		t.Errorf("wrong secret: %s", r.Verdict)
	}
	other := t.TempDir()
	if _, err := pki.LoadOrCreateCA(other, "another CA", now); err != nil {
		t.Fatal(err)
	}
	otherCfg, _ := pki.Client{CAFile: filepath.Join(other, pki.CACertFile)}.Config(srv.TLSURL())
	if r := test(TestOptions{URL: srv.TLSURL(), TLS: otherCfg, CAFile: filepath.Join(other, pki.CACertFile), Creds: f}); r.OK ||
		!strings.Contains(r.Verdict, other) {
		t.Errorf("another CA: %s", r.Verdict)
	}
	// Expired at the hub: the verdict says so and what to do.
	user, _, _ := reg.Get(totem)
	user.Expires = now.Add(-time.Hour)
	if err := reg.Put(user); err != nil {
		t.Fatal(err)
	}
	if r := test(TestOptions{URL: srv.TLSURL(), TLS: tlsCfg, Creds: f}); r.OK || !strings.Contains(r.Verdict, "0x86 "+expiredText) {
		t.Errorf("expired: %s", r.Verdict)
	}
	// Locked: the verdict names the lock, not a wrong password.
	for range broker.MaxFailures {
		test(TestOptions{URL: srv.TLSURL(), TLS: tlsCfg, Creds: bad})
	}
	if r := test(TestOptions{URL: srv.TLSURL(), TLS: tlsCfg, Creds: f}); r.OK || !strings.Contains(r.Verdict, "0x8A "+reasonText(0x8A)) {
		t.Errorf("locked: %s", r.Verdict)
	}
}
