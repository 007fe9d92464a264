package hub

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
)

// The fleet command shows each totem's credentials expiry, read from the
// embedded broker's user registry: provisioned now, it expires after the
// first validity.
func TestFleetShowsCredentialsExpiry(t *testing.T) {
	dir := t.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	reg.SetValidity(broker.Validity{First: 240 * 24 * time.Hour, Next: 90 * 24 * time.Hour, RotateBefore: 14 * 24 * time.Hour})
	if _, err := reg.Provision("t-1", creds.RoleTotem, filepath.Join(dir, "t-1.json")); err != nil {
		t.Fatal(err)
	}
	u, ok, err := reg.Get("t-1")
	if err != nil || !ok || u.Expires.IsZero() {
		t.Fatalf("t-1 in the registry: %+v %v %v", u, ok, err)
	}
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	f := openTestFleet(t, filepath.Join(dir, "presence.db"), c)
	defer f.Close()
	f.Provisioned("t-1", "t-2")
	h := New(Options{Fleet: f, Accounts: reg})
	raw, err := h.fleet(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	var page FleetPage
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Totems) != 2 || !page.Totems[0].CredentialsExpire.Equal(u.Expires) || !page.Totems[1].CredentialsExpire.IsZero() {
		t.Fatalf("credentials expiry: %+v, want t-1 %v and t-2 none", page.Totems, u.Expires)
	}
}
