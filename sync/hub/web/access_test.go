package web

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
)

// The access page shows, per broker user, the lock with its time and the
// source address of the failure that locked it, and the user's credential
// events counted since the hub started (issue 14: visible to ops, counted
// per totem for the metrics and the ops console); after an unlock from the
// page, the lock is gone and the unlock counted.
func TestAccessShowsLockAndCredentialEvents(t *testing.T) {
	dir := t.TempDir()
	reg := OpenTestRegistry(t, dir)
	EnrollTotem(t, reg, "t-ev", time.Now())
	if _, err := reg.Provision("t-calm", creds.RoleTotem, filepath.Join(dir, "t-calm.json")); err != nil {
		t.Fatal(err)
	}
	for range broker.MaxFailures {
		reg.Check("t-ev", "wrong-secret", "192.0.2.7:4000")
	}
	tc := newTestConsole(t, hostileList, func(c *Console) {
		c.Credentials = reg.Credentials
		c.Unlock = func(name string) (bool, error) { _, ok, err := reg.Unlock(name); return ok, err }
	})
	ops := tc.login(t, "anna")
	row := func(body, user string) string {
		t.Helper()
		i := strings.Index(body, "<tr><td>"+user+"</td>")
		if i < 0 {
			t.Fatalf("no row for %s:\n%s", user, body)
		}
		return body[i : i+strings.Index(body[i:], "</tr>")]
	}
	locks, _ := reg.Locks()
	if len(locks) != 1 || !locks[0].Locked {
		t.Fatalf("locks %+v", locks)
	}
	_, body := tc.get(t, ops, "/access")
	r := row(body, "t-ev")
	for _, want := range []string{"sì, dal " + when(locks[0].LockedAt) + " da 192.0.2.7:4000", "(8)",
		"attivazioni 1, accessi errati 8, blocchi 1"} {
		if !strings.Contains(r, want) {
			t.Errorf("t-ev's row lacks %q:\n%s", want, r)
		}
	}
	if r := row(body, "t-calm"); strings.Contains(r, "192.0.2.7") || strings.Contains(r, "blocchi") {
		t.Errorf("t-calm's row: %s", r)
	}
	if _, body := tc.post(t, ops, "/access/unlock", url.Values{"name": {"t-ev"}}); !strings.Contains(body, "ok: t-ev") {
		t.Fatalf("unlock from the page:\n%s", body)
	}
	_, body = tc.get(t, ops, "/access")
	if r := row(body, "t-ev"); strings.Contains(r, "192.0.2.7") || !strings.Contains(r, "blocchi 1, sblocchi 1") {
		t.Errorf("t-ev's row after the unlock: %s", r)
	}
}
