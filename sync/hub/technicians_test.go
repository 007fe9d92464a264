package hub_test

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/techset"
	"github.com/eclipse/paho.golang/paho"
)

// Ops enrolls a technician at the hub with a signed command; the hub
// pushes the set, signed with its key for the totem, retained on the
// totem's technicians topic, where the totem (and only it) reads it and
// verifies it; removal pushes a newer set; an unlock code the hub gives a
// technician's console checks with the key the set carried.
func TestTechnicianSetPush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	c := synctest.Start(t, synctest.Options{Users: []synctest.User{consoleUser("ops"), totemUser("t-tech")},
		CMS: &refcms.Options{}})
	fleet, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	fleet.Provisioned("t-tech")
	techs, err := techset.OpenStore(filepath.Join(dir, "technicians.json"))
	if err != nil {
		t.Fatal(err)
	}
	hubKey, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	ck := newConsoleKeys(t)
	c.StartHub(hub.Options{Verifier: ck.verifier, Fleet: fleet, Technicians: techs, TechKey: &hubKey})

	con := dialConsole(ctx, t, c.URL(), c.Creds("ops"), "ops")
	ask := func(k cmdsig.PrivateKey, name string, args map[string]string) *protocol.Reply {
		t.Helper()
		return con.ask(t, ck.command(t, k, name, args), name)
	}
	if r := ask(ck.tech, "technician_add", map[string]string{"name": "Tecnico Uno"}); r.OK || r.Code != cmdsig.CodeOutOfRole {
		t.Fatalf("a technician key enrolled a technician: %+v", r)
	}
	r := ask(ck.ops, "technician_add", map[string]string{"name": "Tecnico Uno"})
	var added hub.TechnicianAdded
	if !r.OK || json.Unmarshal(r.Data, &added) != nil || added.ID != "1001" || !strings.HasPrefix(added.URI, "otpauth://totp/") {
		t.Fatalf("add: %+v %+v", r, added)
	}
	u, _ := url.Parse(added.URI)
	secret := u.Query().Get("secret")
	if u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" || !techset.ValidSecret(secret) {
		t.Fatalf("uri %s", added.URI)
	}

	// The totem reads its retained set and verifies it.
	sets := make(chan *paho.Publish, 8)
	client(ctx, t, c.URL(), c.Creds("t-tech"), "t-tech", sets, protocol.Topic("t-tech", protocol.LeafTechnicians))
	keys := []cmdsig.PublicKey{hubKey.Public()}
	next := func() *techset.Set {
		t.Helper()
		select {
		case p := <-sets:
			s, err := techset.Verify(p.Payload, "t-tech", keys)
			if err != nil {
				t.Fatal(err)
			}
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no technician set")
		}
		return nil
	}
	s := next()
	if tc, ok := s.Find("1001"); !ok || tc.Secret != secret {
		t.Fatalf("set %+v", s)
	}
	if strings.Contains(string(mustJSON(t, s)), "Tecnico") {
		t.Fatal("the totem's set carries a name")
	}

	// A technician's console gets an unlock code for this totem.
	r = ask(ck.tech, "technician_unlock_code", map[string]string{"totem": "t-tech", "name": "Tecnico Uno"})
	var uc hub.UnlockCode
	if !r.OK || json.Unmarshal(r.Data, &uc) != nil {
		t.Fatalf("unlock code: %+v", r)
	}
	if _, err := techset.CheckUnlock(s.UnlockKey, "t-tech", "1001", uc.Code, uc.Issued.Add(time.Minute), 0); err != nil {
		t.Fatalf("unlock code at the totem: %v", err)
	}

	if r := ask(ck.ops, "technician_list", nil); !r.OK || !strings.Contains(string(r.Data), "Tecnico Uno") ||
		strings.Contains(string(r.Data), secret) {
		t.Fatalf("list: %+v", r)
	}
	if r := ask(ck.ops, "technician_remove", map[string]string{"name": "1001"}); !r.OK {
		t.Fatalf("remove: %+v", r)
	}
	if s2 := next(); s2.Version <= s.Version || len(s2.Technicians) != 0 {
		t.Fatalf("after removal %+v (before: version %d)", s2, s.Version)
	}
	if r := ask(ck.ops, "technician_remove", map[string]string{"name": "1001"}); r.OK {
		t.Fatal("removed twice")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
