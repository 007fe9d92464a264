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
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/techset"
	"github.com/eclipse/paho.golang/autopaho"
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
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	con, _ := creds.Generate("ops", creds.RoleConsole)
	tot, _ := creds.Generate("t-tech", creds.RoleTotem)
	users := broker.NewUsers(nil)
	for _, u := range []creds.File{hubMe, con, tot} {
		users.Add(u)
	}
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	store, err := refcms.Open(filepath.Join(dir, "cms.db"), &refcms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fleet, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	fleet.Provisioned("t-tech")
	techs, err := techset.OpenStore(filepath.Join(dir, "technicians.json"))
	if err != nil {
		t.Fatal(err)
	}
	hubKey, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	ck := newConsoleKeys(t)
	hctx, hcancel := context.WithCancel(ctx)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-t", Username: hubMe.Username, Password: hubMe.Password, Backend: store,
		Verifier: ck.verifier, Fleet: fleet, Technicians: techs, TechKey: &hubKey})
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}

	client := func(f creds.File, topic string, got chan *paho.Publish) *autopaho.ConnectionManager {
		u, _ := url.Parse(srv.URL())
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30,
			ConnectUsername: f.Username, ConnectPassword: []byte(f.Password),
			ClientConfig: paho.ClientConfig{ClientID: f.Username, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) { got <- pr.Packet; return true, nil }}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cm.AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	replies := make(chan *paho.Publish, 4)
	cm := client(con, protocol.HubReplyTopic("ops"), replies)
	defer cm.Disconnect(context.Background())
	ask := func(k cmdsig.PrivateKey, name string, args map[string]string) *protocol.Reply {
		t.Helper()
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: ck.command(t, k, name, args),
			Properties: &paho.PublishProperties{ResponseTopic: protocol.HubReplyTopic("ops"), CorrelationData: []byte(name)}}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-replies:
			r, err := protocol.DecodeReply(p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no reply", name)
		}
		return nil
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
	tcm := client(tot, protocol.Topic("t-tech", protocol.LeafTechnicians), sets)
	defer tcm.Disconnect(context.Background())
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
