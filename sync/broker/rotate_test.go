package broker

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
)

// The right secret past its expiry is refused 0x86 with the reason string
// "expired…", counted apart, and never locks the user; a pending secret of
// a rotation past its own expiry is refused the same way.
func TestExpiredRefusedWithReason(t *testing.T) {
	f := startFleet(t, 0)
	a := f.users["A"]
	u, _, _ := f.reg.Get("A")
	u.Expires = time.Now().Add(-time.Minute)
	if err := f.reg.Put(u); err != nil {
		t.Fatal(err)
	}
	for i := range MaxFailures + 2 {
		_, ca, err := dial(t, f.srv.Addr(), "A", "A", a.Password, nil)
		if err == nil || ca == nil || ca.ReasonCode != codeBadCredentials || ca.Properties == nil ||
			!strings.HasPrefix(ca.Properties.ReasonString, "expired") {
			t.Fatalf("attempt %d: %v %+v", i, err, ca)
		}
	}
	if locks, _ := f.reg.Locks(); len(locks) != 0 {
		t.Errorf("expired attempts counted towards a lock: %+v", locks)
	}
	if s := f.srv.Stats(); s.ExpiredRefused != MaxFailures+2 || s.BadCredentials != 0 {
		t.Errorf("stats %s", s)
	}
}

// Rotate keeps both secrets until a login with the new one, which ends the
// old; validity: 240 days first, then 90.
func TestRotateOverlap(t *testing.T) {
	r := openRegistry(t, filepath.Join(t.TempDir(), "users.db"))
	r.SetValidity(Validity{First: 240 * 24 * time.Hour, Next: 90 * 24 * time.Hour, RotateBefore: 10 * 24 * time.Hour})
	old, err := r.Provision("T1", creds.RoleTotem, filepath.Join(t.TempDir(), "T1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(old.Expires); d < 239*24*time.Hour || d > 240*24*time.Hour || old.Expires.Sub(old.RotateAt) != 10*24*time.Hour {
		t.Fatalf("first credentials %v / %v", old.Expires, old.RotateAt)
	}
	next, _ := creds.Generate("T1", creds.RoleTotem)
	exp, rot, err := r.Rotate("T1", next.Password, time.Now())
	if err != nil || time.Until(exp) < 89*24*time.Hour || exp.Sub(rot) != 10*24*time.Hour {
		t.Fatalf("Rotate: %v %v %v", exp, rot, err)
	}
	for range 3 { // both, as often as needed
		if _, out, _ := r.Check("T1", old.Password, ""); out != Accepted {
			t.Fatalf("old secret during the overlap: %v", out)
		}
	}
	if _, out, _ := r.Check("T1", next.Password, ""); out != Accepted {
		t.Fatalf("new secret: %v", out)
	}
	if _, out, _ := r.Check("T1", old.Password, ""); out != Rejected {
		t.Fatalf("old secret after the new one logged in: %v", out)
	}
	if u, _, _ := r.Get("T1"); u.Next != "" || !u.Expires.Equal(exp) {
		t.Fatalf("user after confirmation: %+v", u)
	}
	if _, _, err := r.Rotate("T1", "short", time.Now()); err == nil {
		t.Error("a short secret accepted")
	}
	if _, err := r.Provision("C1", creds.RoleConsole, filepath.Join(t.TempDir(), "C1.json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Rotate("C1", next.Password, time.Now()); err == nil {
		t.Error("a console rotated")
	}
}
