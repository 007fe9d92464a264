package enroll_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/synctest"
	"go.etcd.io/bbolt"
)

// tlsClient is the enroll client of a totem over the rig's TLS listener
// that trusts caPEM (nil: nothing yet, for FetchCA).
func (r *rig) tlsClient(t *testing.T, url, totem string, caPEM []byte) enroll.Client {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
	if caPEM != nil {
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(caPEM) {
			t.Fatal("no CA in PEM")
		}
	}
	return enroll.Client{URL: url, TLS: cfg, Totem: totem}
}

// A totem with nothing but its code gets the hub's CA (the code never
// sent), then exchanges the code over a connection that verifies the
// broker against it; the credentials log in. The CA answer is counted
// and audited, and neither the code nor the verifier's key is logged.
func TestFetchCAThenExchange(t *testing.T) {
	r := startWith(t, broker.Options{}, rigOptions{tls: true})
	ctx := ctxT(t)
	code, _, err := r.reg.Enroll("t-1", 7*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, code)
	if err != nil {
		t.Fatalf("fetch CA: %v", err)
	}
	if !bytes.Equal(caPEM, r.ca.CertPEM) {
		t.Fatalf("CA fetched is not the hub's:\n%s", caPEM)
	}
	// The CA request did not use the code.
	if e, _, _ := r.reg.EnrollmentOf("t-1"); !e.Used.IsZero() || e.Failures != 0 {
		t.Fatalf("the CA request touched the code: %+v", e)
	}
	f, _, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", caPEM).Exchange(ctx, code)
	if err != nil {
		t.Fatalf("exchange with the fetched CA: %v", err)
	}
	if _, _, rc := dial(t, r.srv.Addr(), "t-1", f.Username, f.Password, nil); rc != 0 {
		t.Fatalf("the enrolled totem cannot log in: 0x%02X", rc)
	}
	// The code is used: a CA request for it is refused.
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, code); enroll.ReasonOf(err) != enroll.ReasonUsed {
		t.Fatalf("CA request for a used code: %v", err)
	}
	if s := r.hub.EnrollStats(); s.OK != 1 || s.CA != 1 || s.Refused[enroll.ReasonUsed] != 1 {
		t.Errorf("stats %+v", s)
	}
	recs, err := r.audit.List(audit.Filter{Action: "enroll_ca"})
	if err != nil || len(recs) != 1 || !strings.Contains(recs[0].Detail, "totem=t-1") {
		t.Fatalf("CA request not audited: %+v %v", recs, err)
	}
	recs, _ = r.audit.List(audit.Filter{Action: "enroll_refused"})
	if len(recs) != 1 || !strings.HasSuffix(recs[0].Detail, "step=ca reason=used") {
		t.Fatalf("refused CA request audited as %+v", recs)
	}
	e, _, _ := r.reg.EnrollmentOf("t-1")
	logs := r.logs.String()
	for what, secret := range map[string]string{"code": code, "normalised code": strings.ReplaceAll(code, "-", ""), "password": f.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s in the logs", what)
		}
	}
	if e.Verifier == nil || bytes.Contains([]byte(logs), e.Verifier.Key) {
		t.Errorf("verifier %+v (or its key in the logs)", e.Verifier)
	}
}

// A mistyped code fails the MAC: refused with a clear message, no CA
// returned, and nothing changes at the hub (the code never left the
// totem): the right code works after.
func TestFetchCAWrongCode(t *testing.T) {
	r := startWith(t, broker.Options{}, rigOptions{tls: true})
	ctx := ctxT(t)
	code, _, _ := r.reg.Enroll("t-1", time.Hour, time.Now())
	wrong := "2222-2222-2222"
	if code == wrong {
		t.Skip("the random code is the wrong one")
	}
	ca, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, wrong)
	if enroll.ReasonOf(err) != enroll.ReasonMismatch || ca != nil ||
		!strings.Contains(err.Error(), "the code does not match this totem's enrollment, or the broker is not the hub") {
		t.Fatalf("wrong code: %q %v", ca, err)
	}
	// Another totem's code is worth nothing for t-1 either.
	code2, _, _ := r.reg.Enroll("t-2", time.Hour, time.Now())
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, code2); enroll.ReasonOf(err) != enroll.ReasonMismatch {
		t.Fatalf("another totem's code: %v", err)
	}
	if e, _, _ := r.reg.EnrollmentOf("t-1"); !e.Used.IsZero() || e.Failures != 0 {
		t.Fatalf("a wrong code touched the enrollment: %+v", e)
	}
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, code); err != nil {
		t.Fatalf("the right code after a wrong one: %v", err)
	}
}

// A man in the middle relays the CA request and the hub's true answer,
// whose MAC checks: the chain the totem's connection presented (the
// middle's) does not chain to that CA, so the totem refuses, and the
// code never crossed the middle (it holds the request, without it).
func TestFetchCAThroughMITM(t *testing.T) {
	r := startWith(t, broker.Options{}, rigOptions{tls: true})
	ctx := ctxT(t)
	code, _, _ := r.reg.Enroll("t-1", time.Hour, time.Now())
	rl := synctest.StartMITM(t, r.srv.TLSAddr(), r.ca.Cert)
	ca, err := r.tlsClient(t, "mqtts://"+rl.Addr(), "t-1", nil).FetchCA(ctx, code)
	if enroll.ReasonOf(err) != enroll.ReasonMismatch || ca != nil || !strings.Contains(err.Error(), "is not the hub's for 127.0.0.1") {
		t.Fatalf("through a man in the middle: %q %v", ca, err)
	}
	got := rl.Captured()
	if !bytes.Contains(got, []byte(`"totem":"t-1"`)) || !bytes.Contains(got, []byte(`"nonce":`)) {
		t.Fatalf("the relay did not see the request (capture broken?): %q", got)
	}
	for _, c := range []string{code, strings.ReplaceAll(code, "-", "")} {
		if bytes.Contains(got, []byte(c)) {
			t.Fatal("the code crossed the man in the middle")
		}
	}
	if s := r.hub.EnrollStats(); s.CA != 1 {
		t.Errorf("the hub answered %d CA requests, want 1 (the relay's): %+v", s.CA, s)
	}
	// Nothing changed: the code works directly.
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, code); err != nil {
		t.Fatalf("directly: %v", err)
	}
}

// A code issued before the hub kept verifiers (a record without one) is
// refused a CA (old_code, with what to do) and still exchanges for
// credentials by a totem given the CA file.
func TestOldRecordWithoutVerifier(t *testing.T) {
	var code string
	seed := func(t *testing.T, db string) {
		reg, err := broker.OpenRegistry(db)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, err = reg.Enroll("t-old", time.Hour, time.Now()); err != nil {
			t.Fatal(err)
		}
		reg.Close()
		// Strip the verifier: the record as it was written before.
		bdb, err := bbolt.Open(db, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		if err := bdb.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("enroll"))
			var rec map[string]any
			if err := json.Unmarshal(b.Get([]byte("t-old")), &rec); err != nil {
				return err
			}
			if _, ok := rec["verifier"]; !ok {
				t.Fatalf("no verifier in %v", rec)
			}
			delete(rec, "verifier")
			v, _ := json.Marshal(rec)
			return b.Put([]byte("t-old"), v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	r := startWith(t, broker.Options{}, rigOptions{tls: true, seed: seed})
	ctx := ctxT(t)
	if e, _, _ := r.reg.EnrollmentOf("t-old"); e.Verifier != nil {
		t.Fatal("the seed left the verifier")
	}
	_, err := r.tlsClient(t, r.srv.TLSURL(), "t-old", nil).FetchCA(ctx, code)
	if enroll.ReasonOf(err) != enroll.ReasonOldCode || !strings.Contains(err.Error(), "copy the hub's ca.pem") {
		t.Fatalf("CA request for an old code: %v", err)
	}
	f, _, err := r.tlsClient(t, r.srv.TLSURL(), "t-old", r.ca.CertPEM).Exchange(ctx, code)
	if err != nil || f.Username != "t-old" {
		t.Fatalf("an old code with the CA given: %+v %v", f, err)
	}
}

// A hub that does not hand out a CA (its broker has the ASL's own
// certificate), an unknown totem, an expired code: refused with their
// reason, before any MAC.
func TestFetchCARefusals(t *testing.T) {
	r := startWith(t, broker.Options{EnrollPerSource: 100}, rigOptions{tls: true})
	ctx := ctxT(t)
	old, _, _ := r.reg.Enroll("t-3", 7*24*time.Hour, time.Now().Add(-8*24*time.Hour))
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-3", nil).FetchCA(ctx, old); enroll.ReasonOf(err) != enroll.ReasonExpired {
		t.Fatalf("expired: %v", err)
	}
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-9", nil).FetchCA(ctx, old); enroll.ReasonOf(err) != enroll.ReasonUnknown {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := r.tlsClient(t, r.srv.URL(), "t-3", nil).FetchCA(ctx, old); err == nil || !strings.Contains(err.Error(), "not a TLS URL") {
		t.Fatalf("plain URL: %v", err)
	}
	r.hub.SetEnrollCA(nil)
	code, _, _ := r.reg.Enroll("t-1", time.Hour, time.Now())
	if _, err := r.tlsClient(t, r.srv.TLSURL(), "t-1", nil).FetchCA(ctx, code); enroll.ReasonOf(err) != enroll.ReasonNoCA {
		t.Fatalf("no CA: %v", err)
	}
	if s := r.hub.EnrollStats(); s.CA != 0 || s.Refused[enroll.ReasonNoCA] != 1 || s.Refused[enroll.ReasonExpired] != 1 {
		t.Errorf("stats %+v", s)
	}
}
