package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/synctest"
)

// A totem with no ca.pem enrolls with nothing but its code: totemd
// enroll gets the hub's CA (proved by the code, which it does not send),
// writes it 0644 where ca_file says (here the default, beside
// credentials_file), exchanges the code over a connection verified
// against it, writes the credentials, and the totem then logs in
// (Test credenziali). A mistyped code and a man in the middle are refused
// and write nothing, and the code never crosses the middle; ca_file =
// "system" keeps the plain verified path (no CA fetched).
func TestEnrollWithOnlyTheCode(t *testing.T) {
	rig := startEnrollRig(t, 90*time.Second, 100)
	now, ctx, credsFile := rig.Now, rig.Ctx, rig.CredsFile
	srv, reg, h, ca := rig.Broker, rig.Registry, rig.Hub, rig.CA
	h.SetEnrollCA(ca.Cert.Raw)
	totemDir := filepath.Dir(credsFile)
	caFile := filepath.Join(totemDir, "ca.pem") // ca_file's default
	config := func(url, caLine string) string { return rig.config(t, url, caLine) }
	enrollRun := rig.enroll
	nothingWritten := func(when string) {
		t.Helper()
		if ents, err := os.ReadDir(totemDir); err == nil && len(ents) > 0 || err != nil && !os.IsNotExist(err) {
			t.Fatalf("%s: the totem's directory holds %v (%v)", when, ents, err)
		}
	}
	code, _, err := reg.Enroll("t-1", 7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	plain := config(srv.TLSURL(), "")

	wrong := "2222-2222-2222"
	if code == wrong {
		wrong = "3333-3333-3333"
	}
	if _, err := enrollRun(plain, wrong); err == nil ||
		!strings.Contains(err.Error(), "the code does not match this totem's enrollment, or the broker is not the hub") {
		t.Fatalf("a wrong code: %v", err)
	}
	nothingWritten("a wrong code")

	m := synctest.StartMITM(t, srv.TLSAddr(), ca.Cert)
	if _, err := enrollRun(config("mqtts://"+m.Addr(), ""), code); err == nil || !strings.Contains(err.Error(), "is not the hub's") {
		t.Fatalf("through a man in the middle: %v", err)
	}
	nothingWritten("a man in the middle")
	got := m.Captured()
	if !bytes.Contains(got, []byte(`"nonce":`)) {
		t.Fatalf("the middle saw no CA request (capture broken?): %q", got)
	}
	for _, c := range []string{code, strings.ReplaceAll(code, "-", "")} {
		if bytes.Contains(got, []byte(c)) {
			t.Fatal("the code crossed the man in the middle")
		}
	}

	// ca_file = "system": today's path, the broker verified against the
	// system's roots (which do not know the hub's CA); no CA fetched.
	if _, err := enrollRun(config(srv.TLSURL(), "ca_file = \"system\"\n"), code); err == nil || !strings.Contains(err.Error(), "system's certificate authorities") {
		t.Fatalf("ca_file = system: %v", err)
	}
	nothingWritten("ca_file = system")
	if s := h.EnrollStats(); s.CA != 2 || s.OK != 0 { // the wrong code's and the middle's
		t.Fatalf("stats %+v", s)
	}

	out, err := enrollRun(plain, code)
	if err != nil || !strings.Contains(out, "its CA (SHA-256 ") || !strings.Contains(out, "written to "+caFile) ||
		!strings.Contains(out, "totem t-1 enrolled") {
		t.Fatalf("enroll with only the code: %v\n%s", err, out)
	}
	b, err := os.ReadFile(caFile)
	if err != nil || !bytes.Equal(b, ca.CertPEM) {
		t.Fatalf("CA file: %v\n%s", err, b)
	}
	if st, _ := os.Stat(caFile); st.Mode().Perm() != 0o644 {
		t.Errorf("CA file mode %v", st.Mode())
	}
	if st, err := os.Stat(credsFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", st, err)
	}
	if cout, err := totemd(ctx, "credentials", "test", "--config", plain); err != nil ||
		!strings.Contains(cout, "OK: credentials of t-1 accepted") {
		t.Fatalf("credentials test after enrolling with only the code: %v\n%s", err, cout)
	}
	if s := h.EnrollStats(); s.CA != 3 || s.OK != 1 {
		t.Errorf("stats %+v", s)
	}
	// With the CA in place, a new code goes the plain verified way.
	code2, _, _ := reg.Enroll("t-1", time.Hour, now)
	if out, err := enrollRun(plain, code2); err != nil || strings.Contains(out, "its CA") {
		t.Fatalf("enroll again: %v\n%s", err, out)
	}
	if s := h.EnrollStats(); s.CA != 3 || s.OK != 2 {
		t.Errorf("stats %+v", s)
	}
}
