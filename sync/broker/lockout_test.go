package broker

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aslcns/totem/sync/creds"
	"github.com/eclipse/paho.golang/paho"
)

const codeLockedByte = 0x8A

// Eight wrong passwords in a row lock a totem: the eighth and every
// attempt after it, the right password included, are answered 0x8A with
// the reason; the lock, its time and the source address are logged and
// listed; Unlock restores the login.
func TestLockoutAfterEightFailures(t *testing.T) {
	f := startFleet(t, 0)
	a := f.users["A"]
	for i := 1; i <= MaxFailures; i++ {
		_, ca, err := dial(t, f.srv.Addr(), "A", "A", a.Password+"x", nil)
		if err == nil || ca == nil {
			t.Fatalf("attempt %d: %v %+v", i, err, ca)
		}
		want := byte(codeBadCredentials)
		if i == MaxFailures {
			want = codeLockedByte
		}
		if ca.ReasonCode != want {
			t.Fatalf("attempt %d: CONNACK %#x, want %#x", i, ca.ReasonCode, want)
		}
	}
	_, ca, err := dial(t, f.srv.Addr(), "A", "A", a.Password, nil)
	if err == nil || ca == nil || ca.ReasonCode != codeLockedByte {
		t.Fatalf("right password while locked: %v %+v", err, ca)
	}
	if ca.Properties == nil || !strings.Contains(ca.Properties.ReasonString, "locked") {
		t.Errorf("no reason string: %+v", ca.Properties)
	}
	// Another totem is not affected: the count is per user.
	f.login(t, "B", "B")

	s := f.srv.Stats()
	if s.Lockouts != 1 || s.LockedRefused != 2 || s.BadCredentials != MaxFailures-1 {
		t.Errorf("stats %s", s)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "user locked") || !strings.Contains(logs, "username=A") || !strings.Contains(logs, "from=127.0.0.1:") {
		t.Errorf("lock not audited:\n%s", logs)
	}

	locks, err := f.reg.Locks()
	if err != nil || len(locks) != 1 || !locks[0].Locked || locks[0].Username != "A" ||
		!strings.HasPrefix(locks[0].From, "127.0.0.1:") || locks[0].LockedAt.IsZero() || locks[0].Failures != MaxFailures {
		t.Fatalf("locks %+v, %v", locks, err)
	}
	was, ok, err := f.reg.Unlock("A")
	if err != nil || !ok || !was.Locked {
		t.Fatalf("Unlock = %+v, %v, %v", was, ok, err)
	}
	f.login(t, "A", "A")
	if locks, _ := f.reg.Locks(); len(locks) != 0 {
		t.Errorf("locks after unlock: %+v", locks)
	}
	if _, ok, _ := f.reg.Unlock("A"); ok {
		t.Error("Unlock of a user not locked reported a lock")
	}
	if _, _, err := f.reg.Unlock("nobody"); err == nil {
		t.Error("Unlock of an unknown user succeeded")
	}
}

// A success before the eighth failure starts the count again.
func TestLockoutCountsConsecutiveFailures(t *testing.T) {
	r := openRegistry(t, filepath.Join(t.TempDir(), "users.db"))
	f, err := r.Provision("T1", creds.RoleTotem, filepath.Join(t.TempDir(), "T1.json"))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for i := range MaxFailures - 1 {
			if _, out, _ := r.Check("T1", "wrong", "10.0.0.9:1"); out != Rejected {
				t.Fatalf("round %d failure %d: %v", round, i, out)
			}
		}
		if _, out, _ := r.Check("T1", f.Password, "10.0.0.8:1"); out != Accepted {
			t.Fatalf("round %d: right password %v", round, out)
		}
	}
	// Unknown users are not counted (nothing stored for them).
	for range MaxFailures + 1 {
		if _, out, _ := r.Check("ghost", "x", "10.0.0.9:1"); out != Rejected {
			t.Fatal(out)
		}
	}
	if locks, _ := r.Locks(); len(locks) != 0 {
		t.Fatalf("locks %+v", locks)
	}
	// Concurrent failures lock exactly once, at the eighth.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		just int
	)
	for range 3 * MaxFailures {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, j := r.Check("T1", "wrong", "10.0.0.9:1"); j {
				mu.Lock()
				just++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if just != 1 {
		t.Fatalf("locked %d times", just)
	}
	if _, out, _ := r.Check("T1", f.Password, ""); out != Refused {
		t.Fatalf("locked user: %v", out)
	}
	// A new secret (re-enrollment) lifts the lock.
	if err := r.Put(User{Username: "T1", Role: creds.RoleTotem, Hash: mustHash(t, "new-secret")}); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := r.Check("T1", "new-secret", ""); out != Accepted {
		t.Fatalf("after a new secret: %v", out)
	}
}

func mustHash(t *testing.T, s string) string {
	t.Helper()
	h, err := creds.Hash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// OnCredentialEvent hears the lock and the unlock (the hub's audit), not
// each failure before the lock.
func TestCredentialEventsHeard(t *testing.T) {
	f := startFleet(t, 0)
	var mu sync.Mutex
	var heard []string
	f.reg.OnCredentialEvent(func(user, event string) {
		mu.Lock()
		heard = append(heard, user+" "+event)
		mu.Unlock()
	})
	a := f.users["A"]
	for range MaxFailures {
		dial(t, f.srv.Addr(), "A", "A", a.Password+"x", nil)
	}
	if _, ok, err := f.reg.Unlock("A"); !ok || err != nil {
		t.Fatalf("unlock: %v %v", ok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(heard, ",") != "A locked,A unlocked" {
		t.Fatalf("heard %q, want the lock and the unlock", heard)
	}
}

// A console's broker user is locked like a totem's: seven failures and a
// success start the count again, eight in a row lock it (the right secret
// then refused 0x8A), and an unlock restores the login.
func TestConsoleLockedLikeATotem(t *testing.T) {
	f := startFleet(t, 0)
	c := f.users["C1"]
	fail := func(n int) *paho.Connack {
		t.Helper()
		var ca *paho.Connack
		for i := 1; i <= n; i++ {
			var err error
			if _, ca, err = dial(t, f.srv.Addr(), "ops-pc", "C1", c.Password+"x", nil); err == nil || ca == nil {
				t.Fatalf("wrong secret %d: %v %+v", i, err, ca)
			}
		}
		return ca
	}
	fail(MaxFailures - 1)
	f.login(t, "ops-pc", "C1") // resets the count
	if ca := fail(MaxFailures - 1); ca.ReasonCode != codeBadCredentials {
		t.Fatalf("after a success, failure %d: %#x, want %#x", MaxFailures-1, ca.ReasonCode, codeBadCredentials)
	}
	if ca := fail(1); ca.ReasonCode != codeLockedByte {
		t.Fatalf("failure %d in a row: %#x, want %#x", MaxFailures, ca.ReasonCode, codeLockedByte)
	}
	if _, ca, err := dial(t, f.srv.Addr(), "ops-pc", "C1", c.Password, nil); err == nil || ca == nil || ca.ReasonCode != codeLockedByte {
		t.Fatalf("the right secret while locked: %v %+v", err, ca)
	}
	if _, ok, err := f.reg.Unlock("C1"); !ok || err != nil {
		t.Fatalf("unlock: %v %v", ok, err)
	}
	f.login(t, "ops-pc", "C1")
}
