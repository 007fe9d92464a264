package broker

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/enroll"
)

// A code's record keeps its verifier (for a new totem's CA request), never
// the code; Verifier answers with it while the code is good and refuses
// as a Redeem would (unknown, burnt, used, expired) otherwise, changing
// nothing: a CA request is no wrong code.
func TestEnrollVerifier(t *testing.T) {
	db := filepath.Join(t.TempDir(), "users.db")
	r, err := OpenRegistry(db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	code, _, err := r.Enroll("t-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := enroll.ParseCode(code)
	v, err := r.Verifier("t-1", now)
	if err != nil || len(v.Salt) != 16 || len(v.Key) != 32 || v.KDF != enroll.DefaultKDF {
		t.Fatalf("verifier %+v %v", v, err)
	}
	if e, _, _ := r.EnrollmentOf("t-1"); e.Failures != 0 || !e.Used.IsZero() {
		t.Fatalf("Verifier touched the record: %+v", e)
	}
	// A new code, a new salt.
	code, _, _ = r.Enroll("t-1", time.Hour, now)
	norm2, _ := enroll.ParseCode(code)
	if v2, _ := r.Verifier("t-1", now); bytes.Equal(v2.Salt, v.Salt) || bytes.Equal(v2.Key, v.Key) {
		t.Fatal("a new code kept the old verifier")
	}
	r.st.(boltStore).db.Sync()
	if b, err := os.ReadFile(db); err != nil || bytes.Contains(b, []byte(norm)) || bytes.Contains(b, []byte(norm2)) {
		t.Fatalf("a code in clear in the registry (%v)", err)
	}
	if _, err := r.Verifier("t-9", now); enroll.ReasonOf(err) != enroll.ReasonUnknown {
		t.Errorf("unknown: %v", err)
	}
	if _, err := r.Verifier("t-1", now.Add(2*time.Hour)); enroll.ReasonOf(err) != enroll.ReasonExpired {
		t.Errorf("expired: %v", err)
	}
	wrong := strings.Repeat("2", enroll.CodeLen)
	for range enroll.MaxAttempts {
		if norm2 != wrong {
			r.Redeem("t-1", wrong, now)
		}
	}
	if _, err := r.Verifier("t-1", now); enroll.ReasonOf(err) != enroll.ReasonBurnt {
		t.Errorf("burnt: %v", err)
	}
	code, _, _ = r.Enroll("t-1", time.Hour, now)
	norm3, _ := enroll.ParseCode(code)
	if _, err := r.Redeem("t-1", norm3, now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verifier("t-1", now); enroll.ReasonOf(err) != enroll.ReasonUsed {
		t.Errorf("used: %v", err)
	}
}
