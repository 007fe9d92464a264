package techset

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func signed(t *testing.T, k cmdsig.PrivateKey, totem string) []byte {
	t.Helper()
	st, err := OpenStore(filepath.Join(t.TempDir(), "technicians.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add("Tecnico Uno", t0); err != nil {
		t.Fatal(err)
	}
	s := st.For(totem, t0)
	if err := Sign(k, s); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A set verifies with the ops key that signed it, for its totem only; any
// change to what it says, another key, or a technician's key is refused.
func TestSetSignature(t *testing.T) {
	hub, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	other, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	tech, _ := cmdsig.Generate("laptop", cmdsig.Technician)
	keys := []cmdsig.PublicKey{hub.Public(), tech.Public()}
	b := signed(t, hub, "t-01")
	s, err := Verify(b, "t-01", keys)
	if err != nil || len(s.Technicians) != 1 || s.Technicians[0].ID != "1001" || s.Version != 2 {
		t.Fatalf("verify %+v %v", s, err)
	}
	if _, err := Verify(b, "t-02", keys); !errors.Is(err, ErrTarget) {
		t.Fatalf("other totem: %v", err)
	}
	if _, err := Verify(b, "t-01", []cmdsig.PublicKey{other.Public()}); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key with the same id: %v", err)
	}
	if _, err := Verify(signed(t, hub, "t-01"), "t-01", nil); !errors.Is(err, ErrSignature) {
		t.Fatalf("no key trusted: %v", err)
	}
	if err := Sign(tech, &Set{}); err == nil {
		t.Fatal("a technician key signed a set")
	}
	tamper := []func(s *Set){
		func(s *Set) { s.Technicians[0].Secret = b32.EncodeToString(make([]byte, 20)) },
		func(s *Set) {
			s.Technicians = append(s.Technicians, Technician{ID: "6666", Secret: s.Technicians[0].Secret})
		},
		func(s *Set) { s.Technicians = nil },
		func(s *Set) { s.Version++ },
		func(s *Set) { s.Issued = s.Issued.Add(time.Hour) },
		func(s *Set) { s.UnlockKey[0] ^= 1 },
		func(s *Set) { s.Totem = "t-02" },
		func(s *Set) { s.Key = "laptop" },
	}
	for i, f := range tamper {
		var s Set
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		f(&s)
		tb, _ := json.Marshal(&s)
		want := ErrSignature
		if _, err := Verify(tb, s.Totem, keys); !errors.Is(err, want) {
			t.Errorf("tamper %d: %v", i, err)
		}
	}
}

// A signed set with anything after it is refused, a closing brace or
// bracket too (json.Decoder.More, which Decode once asked, is false before
// them), and the refusal quotes nothing of the set.
func TestSetTrailingData(t *testing.T) {
	hub, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	keys := []cmdsig.PublicKey{hub.Public()}
	b := signed(t, hub, "t-01")
	for _, tail := range []string{"}", "]", " {}", "x"} {
		_, err := Verify(append(append([]byte{}, b...), tail...), "t-01", keys)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("set followed by %q: %v", tail, err)
		}
	}
	if _, err := Verify(append(append([]byte{}, b...), " \n"...), "t-01", keys); err != nil {
		t.Errorf("set followed by white space: %v", err)
	}
	if _, err := Decode([]byte(`{"v":1,"Tecnico Uno":1}`)); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "Tecnico") {
		t.Errorf("unknown member: %v", err)
	}
}

func TestUnlockCode(t *testing.T) {
	key := DeriveUnlockKey([]byte("master secret of the hub........."), "t-01")
	issued := t0.Add(30 * time.Second)
	code := UnlockCode(key, "t-01", "1001", issued)
	if len(code) != UnlockDigits {
		t.Fatalf("code %q", code)
	}
	got, err := CheckUnlock(key, "t-01", "1001", code, t0.Add(10*time.Minute), 0)
	if err != nil || got != t0 {
		t.Fatalf("check: %v %v", got, err)
	}
	// Accepted once: the minute is recorded as used.
	if _, err := CheckUnlock(key, "t-01", "1001", code, t0.Add(11*time.Minute), Minute(got)); !errors.Is(err, ErrUsed) {
		t.Fatalf("reuse: %v", err)
	}
	// Another totem (its own key), another technician, a typo.
	key2 := DeriveUnlockKey([]byte("master secret of the hub........."), "t-02")
	if _, err := CheckUnlock(key2, "t-02", "1001", code, t0, 0); !errors.Is(err, ErrBadCode) {
		t.Fatalf("other totem: %v", err)
	}
	if _, err := CheckUnlock(key, "t-01", "1002", code, t0, 0); !errors.Is(err, ErrBadCode) {
		t.Fatalf("other technician: %v", err)
	}
	bad := []byte(code)
	bad[10] = '0' + (bad[10]-'0'+1)%10
	if _, err := CheckUnlock(key, "t-01", "1001", string(bad), t0, 0); !errors.Is(err, ErrBadCode) {
		t.Fatalf("typo: %v", err)
	}
	for _, c := range []string{"", "123", code + "1", "12345abcdef"} {
		if _, err := CheckUnlock(key, "t-01", "1001", c, t0, 0); !errors.Is(err, ErrBadCode) {
			t.Fatalf("%q: %v", c, err)
		}
	}
	// Expired against the reference, however long ago.
	for _, late := range []time.Duration{16 * time.Minute, 40 * time.Hour, 30 * 24 * time.Hour} {
		if _, err := CheckUnlock(key, "t-01", "1001", code, t0.Add(late), 0); !errors.Is(err, ErrExpired) {
			t.Fatalf("after %v: %v", late, err)
		}
	}
	// A reference behind the hub (an old set, a reboot): still found.
	if _, err := CheckUnlock(key, "t-01", "1001", code, t0.Add(-20*24*time.Hour), 0); err != nil {
		t.Fatalf("reference behind: %v", err)
	}
}

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub", "technicians.json")
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.Add("Tecnico Uno", t0)
	if err != nil || a.ID != "1001" || !ValidSecret(a.Secret) {
		t.Fatalf("add %+v %v", a, err)
	}
	if _, err := st.Add("Tecnico Uno", t0); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, n := range []string{"", "a\nb", string(make([]byte, 65))} {
		if _, err := st.Add(n, t0); !errors.Is(err, ErrName) {
			t.Fatalf("name %q: %v", n, err)
		}
	}
	b, _ := st.Add("Tecnico Due", t0)
	if _, err := st.Remove("1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Remove("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	again, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if l := again.List(); len(l) != 1 || l[0] != b {
		t.Fatalf("reloaded %+v", l)
	}
	if s := again.For("t-01", t0); s.Version != 4 || len(s.Technicians) != 1 || string(s.UnlockKey) != string(st.UnlockKey("t-01")) {
		t.Fatalf("set %+v", s)
	}
	if c, _ := again.Add("Tecnico Tre", t0); c.ID != "1003" {
		t.Fatalf("numbers are never given twice: %s", c.ID)
	}
	os.Chmod(path, 0o644)
	if _, err := OpenStore(path); err == nil {
		t.Fatal("a store readable by others opened")
	}
}

func FuzzDecode(f *testing.F) {
	hub, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	st, _ := OpenStore(filepath.Join(f.TempDir(), "t.json"))
	st.Add("x", t0)
	s := st.For("t-01", t0)
	Sign(hub, s)
	b, _ := json.Marshal(s)
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"totem":"t","version":1,"issued":"2026-01-01T00:00:00Z","technicians":[{"id":"12","secret":"x"}]}`))
	keys := []cmdsig.PublicKey{hub.Public()}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		if s.check() != nil {
			t.Fatal("decoded an invalid set")
		}
		if v, err := Verify(b, s.Totem, keys); err == nil && v.Version != s.Version {
			t.Fatal("verify read another set")
		}
	})
}

// The unlock code typed at the keypad: any input has an answer, and only
// the code made with the key for that totem, technician and minute passes.
func FuzzCheckUnlock(f *testing.F) {
	key := DeriveUnlockKey([]byte("master"), "t-01")
	f.Add(UnlockCode(key, "t-01", "1001", t0), "1001")
	f.Add("00000000000", "1001")
	f.Add("99999", "")
	f.Fuzz(func(t *testing.T, code, tech string) {
		issued, err := CheckUnlock(key, "t-01", tech, code, t0.Add(time.Minute), 0)
		if err != nil {
			return
		}
		if UnlockCode(key, "t-01", tech, issued) != code {
			t.Fatalf("%q accepted for %q, not the code of %v", code, tech, issued)
		}
	})
}

// A set of MaxMembers technicians fits the broker's retained limit
// (16 KiB), so the hub can always publish it retained.
func TestFullSetFitsRetained(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "t.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxMembers; i++ {
		if _, err := st.Add(fmt.Sprintf("Tecnico %03d", i), t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Add("one more", t0); err == nil {
		t.Fatal("more than MaxMembers enrolled")
	}
	k, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	s := st.For("t-0123456789abcdef0123456789abcd", t0)
	Sign(k, s)
	b, _ := json.Marshal(s)
	t.Logf("set of %d technicians: %d bytes", MaxMembers, len(b))
	if len(b) > 16<<10 {
		t.Fatalf("%d bytes", len(b))
	}
	if _, err := Verify(b, s.Totem, []cmdsig.PublicKey{k.Public()}); err != nil {
		t.Fatal(err)
	}
}
