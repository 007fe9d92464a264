package maint

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/techset"
	"github.com/pquerna/otp/totp"
)

type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Meta(k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}

func (s *memStore) SetMeta(k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

type rig struct {
	hub    *techset.Store
	key    cmdsig.PrivateKey
	store  *memStore
	clock  *haltest.Clock
	synced bool
	secret string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	hub, err := techset.OpenStore(filepath.Join(t.TempDir(), "technicians.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := hub.Add("Tecnico Uno", t0)
	k, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	return &rig{hub: hub, key: k, store: &memStore{m: map[string][]byte{}}, clock: haltest.NewClock(t0), synced: true, secret: m.Secret}
}

func (r *rig) signed(t *testing.T, totem string, issued time.Time) []byte {
	t.Helper()
	s := r.hub.For(totem, issued)
	if err := techset.Sign(r.key, s); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	return b
}

func (r *rig) gate(t *testing.T) *Gate {
	t.Helper()
	g, err := New(Options{Totem: "t-01", Keys: []cmdsig.PublicKey{r.key.Public()}, Store: r.store, Clock: r.clock,
		Synced: func() bool { return r.synced }})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (r *rig) code(t *testing.T, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(r.secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A TOTP is accepted once, within one step of skew, and refused on reuse
// (after a restart too) and out of skew.
func TestTOTPOnce(t *testing.T) {
	r := newRig(t)
	g := r.gate(t)
	if err := g.Login("1001", r.code(t, t0)); !errors.Is(err, ErrNoSet) {
		t.Fatalf("no set: %v", err)
	}
	if ok, err := g.SetTechnicians(r.signed(t, "t-01", t0)); !ok || err != nil {
		t.Fatalf("set: %v %v", ok, err)
	}
	now := r.code(t, t0)
	if err := g.Login("1001", now); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
	if err := g.Login("1001", now); !errors.Is(err, ErrReused) {
		t.Fatalf("reuse: %v", err)
	}
	// The previous step's code is older than the one used: refused too.
	if err := g.Login("1001", r.code(t, t0.Add(-Period))); !errors.Is(err, ErrReused) {
		t.Fatalf("older step: %v", err)
	}
	// The next step's code, early by one step: within the skew.
	if err := g.Login("1001", r.code(t, t0.Add(Period))); err != nil {
		t.Fatalf("skew +1: %v", err)
	}
	// Restart: the used step is remembered.
	g2 := r.gate(t)
	if err := g2.Login("1001", r.code(t, t0.Add(Period))); !errors.Is(err, ErrReused) {
		t.Fatalf("reuse after restart: %v", err)
	}
	// Two steps away either side: out of skew.
	r.clock.Advance(5 * time.Minute)
	for _, d := range []time.Duration{-2 * Period, 2 * Period} {
		if err := g2.Login("1001", r.code(t, r.clock.Now().Add(d))); !errors.Is(err, ErrRefused) {
			t.Fatalf("out of skew %v: %v", d, err)
		}
	}
	if err := g2.Login("9999", r.code(t, r.clock.Now())); !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown technician: %v", err)
	}
	if err := g2.Login("1001", r.code(t, r.clock.Now())); err != nil {
		t.Fatalf("current code: %v", err)
	}
}

// Five failures lock the entry for 15 minutes, a right code included, a
// restart does not lift it, and the clock's advance does.
func TestLockout(t *testing.T) {
	r := newRig(t)
	g := r.gate(t)
	g.SetTechnicians(r.signed(t, "t-01", t0))
	for i := 1; i < MaxFailures; i++ {
		if err := g.Login("1001", "000000"); !errors.Is(err, ErrRefused) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if err := g.Login("1001", "000000"); !errors.Is(err, ErrLockedUp) {
		t.Fatalf("5th failure: %v", err)
	}
	if l, left := g.Locked(); !l || left != LockFor {
		t.Fatalf("locked %v %v", l, left)
	}
	if err := g.Login("1001", r.code(t, r.clock.Now())); !errors.Is(err, ErrLocked) {
		t.Fatalf("right code while locked: %v", err)
	}
	r.clock.Advance(10 * time.Minute)
	g = r.gate(t) // restart: locked again for the whole time
	if l, left := g.Locked(); !l || left != LockFor {
		t.Fatalf("after restart: %v %v", l, left)
	}
	r.clock.Advance(LockFor - time.Second)
	if l, _ := g.Locked(); !l {
		t.Fatal("unlocked early")
	}
	r.clock.Advance(time.Second)
	if l, _ := g.Locked(); l {
		t.Fatal("still locked after 15 minutes")
	}
	if err := g.Login("1001", r.code(t, r.clock.Now())); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	// A success resets the count: four more failures do not lock.
	for i := 0; i < MaxFailures-1; i++ {
		g.Login("1001", "000000")
	}
	if l, _ := g.Locked(); l {
		t.Fatal("locked after a success and 4 failures")
	}
}

// With the clock unsynchronised a TOTP is refused and the hub's unlock
// code is asked: accepted once, refused for another totem and expired.
func TestUnlockFallback(t *testing.T) {
	r := newRig(t)
	r.synced = false
	// The set, issued by the hub at t0, is the totem's reference; the
	// board's own clock says 1970 (no RTC).
	r.clock = haltest.NewClock(time.Unix(1000, 0))
	g := r.gate(t)
	if ok, err := g.SetTechnicians(r.signed(t, "t-01", t0)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := g.Login("1001", r.code(t, t0)); !errors.Is(err, ErrRefused) {
		t.Fatalf("TOTP with the clock unsynchronised: %v", err)
	}
	key := r.hub.UnlockKey("t-01")
	r.clock.Advance(3 * time.Minute)
	code := techset.UnlockCode(key, "t-01", "1001", t0.Add(2*time.Minute))
	if err := g.Login("1001", code); err != nil {
		t.Fatalf("unlock code: %v", err)
	}
	if err := g.Login("1001", code); !errors.Is(err, ErrReused) {
		t.Fatalf("unlock code again: %v", err)
	}
	if err := r.gate(t).Login("1001", code); !errors.Is(err, ErrReused) {
		t.Fatalf("unlock code again after a restart: %v", err)
	}
	other := techset.UnlockCode(r.hub.UnlockKey("t-02"), "t-02", "1001", t0.Add(4*time.Minute))
	if err := g.Login("1001", other); !errors.Is(err, ErrRefused) {
		t.Fatalf("code for another totem: %v", err)
	}
	old := techset.UnlockCode(key, "t-01", "1001", t0.Add(4*time.Minute))
	r.clock.Advance(20 * time.Minute) // the reference moves with the monotonic time
	if err := g.Login("1001", old); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired code: %v", err)
	}
	fresh := techset.UnlockCode(key, "t-01", "1001", t0.Add(22*time.Minute))
	if err := g.Login("1001", fresh); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
}

// Only a set signed for this totem by a trusted ops key, and not older
// than the one held, is adopted.
func TestSetAdoption(t *testing.T) {
	r := newRig(t)
	g := r.gate(t)
	b := r.signed(t, "t-01", t0)
	var s techset.Set
	json.Unmarshal(b, &s)
	s.Technicians = append(s.Technicians, techset.Technician{ID: "6666", Secret: s.Technicians[0].Secret})
	tampered, _ := json.Marshal(&s)
	if ok, err := g.SetTechnicians(tampered); ok || !errors.Is(err, techset.ErrSignature) {
		t.Fatalf("tampered: %v %v", ok, err)
	}
	if g.Technicians() != -1 || r.store.m[metaSet] != nil {
		t.Fatal("a tampered set was kept")
	}
	if ok, err := g.SetTechnicians(r.signed(t, "t-02", t0)); ok || !errors.Is(err, techset.ErrTarget) {
		t.Fatalf("other totem's: %v %v", ok, err)
	}
	if ok, err := g.SetTechnicians(b); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := g.SetTechnicians(b); ok || err != nil {
		t.Fatalf("the same again: %v %v", ok, err)
	}
	r.hub.Remove("1001")
	newer := r.signed(t, "t-01", t0.Add(time.Hour))
	if ok, err := g.SetTechnicians(newer); !ok || err != nil || g.Technicians() != 0 {
		t.Fatalf("newer: %v %v", ok, err)
	}
	if ok, err := g.SetTechnicians(b); ok || err == nil {
		t.Fatalf("older set replayed: %v %v", ok, err)
	}
	if g2 := r.gate(t); g2.Technicians() != 0 {
		t.Fatalf("after restart %d", g2.Technicians())
	}
}

// A set adopted while the clock was synchronised still gives the
// reference after a restart without synchronisation (a board without
// RTC comes back in 1970): the hub's unlock code works.
func TestUnlockAfterSyncLost(t *testing.T) {
	r := newRig(t)
	r.clock = haltest.NewClock(t0.Add(time.Hour))
	g := r.gate(t)
	if ok, err := g.SetTechnicians(r.signed(t, "t-01", t0)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	r.synced, r.clock = false, haltest.NewClock(time.Unix(0, 0))
	g = r.gate(t)
	code := techset.UnlockCode(r.hub.UnlockKey("t-01"), "t-01", "1001", t0.Add(time.Hour+time.Minute))
	if err := g.Login("1001", code); err != nil {
		t.Fatalf("unlock code after the clock was lost: %v", err)
	}
}
