package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// client connects a plain MQTT 5 client that hands every message to got.
func client(ctx context.Context, t *testing.T, srv *broker.Server, c creds.File, id string, got chan<- *paho.Publish) *autopaho.ConnectionManager {
	t.Helper()
	u, _ := url.Parse(srv.URL())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30,
		ConnectUsername: c.Username, ConnectPassword: []byte(c.Password),
		ClientConfig: paho.ClientConfig{ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { got <- pr.Packet; return true, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Disconnect(context.Background()) })
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	return cm
}

func next(t *testing.T, ch <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived")
		return nil
	}
}

// A totem's operations, a duplicate and a refused gap reach the hub's send
// log with the totem's clock stamps; a console lists and shows it; the
// totem fetches the hub's ledger of its operations.
func TestSendLogAndLedger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	con, _ := creds.Generate("ops", creds.RoleConsole)
	tot, _ := creds.Generate("t-log", creds.RoleTotem)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
	users.Add(con)
	users.Add(tot)
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	store, err := refcms.Open(filepath.Join(t.TempDir(), "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	hctx, hcancel := context.WithCancel(ctx)
	ck := newConsoleKeys(t)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-l", Username: hubMe.Username, Password: hubMe.Password, Backend: store,
		Verifier: ck.verifier})
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}

	// The totem.
	tin := make(chan *paho.Publish, 16)
	tcm := client(ctx, t, srv, tot, "t-log", tin)
	if _, err := tcm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic("t-log", protocol.LeafResult), QoS: 1},
		{Topic: protocol.Topic("t-log", protocol.LeafLedger), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	stamp := &protocol.Stamp{Boot: "boot-7", Mono: 61_000, Wall: time.Date(1970, 1, 1, 0, 1, 1, 0, time.UTC)}
	op := func(seq uint64) []byte {
		b, _ := protocol.Marshal(protocol.Op{V: 1, ID: fmt.Sprintf("%032x", seq), Totem: "t-log", Seq: seq,
			Kind: cms.KindConsent, Payload: consentPayload(), Created: stamp.Wall, Stamp: stamp})
		return b
	}
	for _, payload := range [][]byte{op(1), op(1), op(5)} { // applied, duplicate, gap
		if _, err := tcm.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-log", protocol.LeafOp), QoS: 1, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		r, err := protocol.DecodeResult(next(t, tin).Payload)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("result seq %d %s %s dup %v", r.Seq, r.Transport.Status, r.Processing.Status, r.Duplicate)
	}

	// The console.
	replies := make(chan *paho.Publish, 4)
	ccm := client(ctx, t, srv, con, "ops-2", replies)
	rt := protocol.HubReplyTopic("ops")
	if _, err := ccm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	ask := func(name string, args map[string]string) *protocol.Reply {
		t.Helper()
		b := ck.command(t, ck.tech, name, args) // the technician's role is enough
		if _, err := ccm.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte(name)}}); err != nil {
			t.Fatal(err)
		}
		r, err := protocol.DecodeReply(next(t, replies).Payload)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name  string
		cmd   string
		args  map[string]string
		ok    bool
		check func(t *testing.T, data []byte)
	}{
		{"all", "sendlog", map[string]string{"totem": "t-log"}, true, func(t *testing.T, b []byte) {
			var p hub.SendLogPage
			json.Unmarshal(b, &p)
			if len(p.Rows) != 3 || p.Rows[0].Transport != cms.TxRefused || p.Rows[0].Expect != 2 ||
				!p.Rows[1].Duplicate || p.Rows[2].Protocol == "" || p.Rows[2].Stamp == nil || p.Rows[2].Stamp.Boot != "boot-7" {
				t.Fatalf("%+v", p)
			}
		}},
		{"duplicates", "sendlog", map[string]string{"outcome": "duplicate"}, true, func(t *testing.T, b []byte) {
			var p hub.SendLogPage
			json.Unmarshal(b, &p)
			if len(p.Rows) != 1 || p.Rows[0].Seq != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"paged", "sendlog", map[string]string{"max": "2"}, true, func(t *testing.T, b []byte) {
			var p hub.SendLogPage
			json.Unmarshal(b, &p)
			if len(p.Rows) != 2 || p.Next != p.Rows[1].N {
				t.Fatalf("%+v", p)
			}
		}},
		{"show", "sendlog_show", map[string]string{"n": "1"}, true, func(t *testing.T, b []byte) {
			var tr cms.Transmission
			json.Unmarshal(b, &tr)
			if tr.Seq != 1 || tr.Processing != cms.TxAccepted || tr.Stamp == nil {
				t.Fatalf("%+v", tr)
			}
		}},
		{"bad outcome", "sendlog", map[string]string{"outcome": "maybe"}, false, nil},
		{"bad date", "sendlog", map[string]string{"from": "ieri"}, false, nil},
		{"bad max", "sendlog", map[string]string{"max": "0"}, false, nil},
		{"bad totem", "sendlog", map[string]string{"totem": "a/b"}, false, nil},
		{"show unknown", "sendlog_show", map[string]string{"n": "99"}, false, nil},
		{"show without n", "sendlog_show", nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ask(tt.cmd, tt.args)
			if r.OK != tt.ok {
				t.Fatalf("%+v", r)
			}
			if tt.check != nil {
				tt.check(t, r.Data)
			}
		})
	}

	// The totem asks for the hub's record of its operations.
	b, _ := protocol.Marshal(protocol.LedgerRequest{V: 1, ID: "sync-1", From: 1, Max: 16})
	if _, err := tcm.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-log", protocol.LeafSync), QoS: 1, Payload: b}); err != nil {
		t.Fatal(err)
	}
	l, err := protocol.DecodeLedger(next(t, tin).Payload)
	if err != nil || l.ID != "sync-1" || l.LastSeq != 1 || len(l.Results) != 1 || l.Results[0].OpID != fmt.Sprintf("%032x", 1) {
		t.Fatalf("ledger %+v %v", l, err)
	}
}
