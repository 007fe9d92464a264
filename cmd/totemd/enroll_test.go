package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
)

// totemd enroll exchanges the code ops got for the totem's credentials
// over the broker's TLS listener and writes them, 0600; the broker then
// admits them. The same code again, an expired one and one from another
// alphabet are refused with their reason and write nothing, and a totem
// trusting another CA fails with a message naming the CA file.
func TestEnrollEndToEnd(t *testing.T) {
	rig := startEnrollRig(t, 60*time.Second, 0)
	dir, now, ctx, credsFile := rig.Dir, rig.Now, rig.Ctx, rig.CredsFile
	srv, reg := rig.Broker, rig.Registry
	config := func(caFile string) string { return rig.config(t, srv.TLSURL(), fmt.Sprintf("ca_file = %q\n", caFile)) }
	good := config(filepath.Join(dir, "ca", pki.CACertFile))
	enrollRun := rig.enroll
	noFile := func(when string) {
		t.Helper()
		if _, err := os.Stat(credsFile); !os.IsNotExist(err) {
			t.Fatalf("%s: credentials file written (%v)", when, err)
		}
	}

	code, _, err := reg.Enroll("t-1", 7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enrollRun(good, "O0I1-2345-6789"); err == nil || !strings.Contains(err.Error(), "alphabet") {
		t.Fatalf("another alphabet: %v", err)
	}
	noFile("another alphabet")
	// A new totem without the hub's CA certificate: told what to copy.
	if _, err := enrollRun(config(filepath.Join(dir, "none", "ca.pem")), code); err == nil ||
		!strings.Contains(err.Error(), "no CA certificate at "+filepath.Join(dir, "none", "ca.pem")+": copy the hub's ca.pem") {
		t.Fatalf("no CA file: %v", err)
	}
	noFile("no CA file")
	otherCA := filepath.Join(dir, "other")
	if _, err := pki.LoadOrCreateCA(otherCA, "another CA", now); err != nil {
		t.Fatal(err)
	}
	if _, err := enrollRun(config(filepath.Join(otherCA, pki.CACertFile)), code); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(otherCA, pki.CACertFile)) {
		t.Fatalf("wrong CA: %v", err)
	}
	noFile("wrong CA")

	out, err := enrollRun(good, code)
	if err != nil || !strings.Contains(out, "totem t-1 enrolled") {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	st, err := os.Stat(credsFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", st, err)
	}
	f, err := creds.Load(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	if role, ok := reg.Authenticate("t-1", f.Password); !ok || role != creds.RoleTotem {
		t.Fatalf("the written credentials do not log in: %q %v", role, ok)
	}

	before, _ := os.ReadFile(credsFile)
	if _, err := enrollRun(good, code); err == nil || !strings.Contains(err.Error(), "(used)") {
		t.Fatalf("replay: %v", err)
	}
	if after, _ := os.ReadFile(credsFile); !bytes.Equal(before, after) {
		t.Fatal("a refused code rewrote the credentials")
	}
	old, _, _ := reg.Enroll("t-1", 7*24*time.Hour, now.Add(-8*24*time.Hour))
	if _, err := enrollRun(good, old); err == nil || !strings.Contains(err.Error(), "(expired)") {
		t.Fatalf("expired: %v", err)
	}
	if after, _ := os.ReadFile(credsFile); !bytes.Equal(before, after) {
		t.Fatal("an expired code rewrote the credentials")
	}

	// Test credenziali over the same TLS path: a clear verdict.
	credTest := func(cfg string) (string, error) { return totemd(ctx, "credentials", "test", "--config", cfg) }
	out, err = credTest(good)
	if err != nil || !strings.Contains(out, "OK: credentials of t-1 accepted") || !strings.Contains(out, "(in 239 days)") ||
		!strings.Contains(out, "totem/v1/acl-probe/cmd") {
		t.Fatalf("credentials test: %v\n%s", err, out)
	}
	if strings.Contains(out, f.Password) {
		t.Fatal("the secret printed")
	}
	if _, err := credTest(config(filepath.Join(otherCA, pki.CACertFile))); err == nil || !strings.Contains(err.Error(), "KO") ||
		!strings.Contains(err.Error(), otherCA) {
		t.Fatalf("credentials test with another CA: %v", err)
	}
	f.Password += "x"
	if err := creds.Save(credsFile, f); err != nil {
		t.Fatal(err)
	}
	if _, err := credTest(good); err == nil || !strings.Contains(err.Error(), "KO") || !strings.Contains(err.Error(), "0x86") {
		t.Fatalf("credentials test with a wrong secret: %v", err)
	}
}
