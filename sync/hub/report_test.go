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
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// A console asks the hub for the Reportistica over MQTT 5 request/response.
func TestConsoleReport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	con, _ := creds.Generate("ops", creds.RoleConsole)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
	users.Add(con)
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
	for i := 1; i <= 3; i++ { // two accepted consents, one rejected (unknown kind)
		kind := cms.KindConsent
		if i == 3 {
			kind = "sospensione"
		}
		if _, err := store.Apply(ctx, cms.Op{ID: fmt.Sprintf("%032x", i), Totem: "t-rep", Seq: uint64(i), Kind: kind,
			Payload: consentPayload(), Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	hctx, hcancel := context.WithCancel(ctx)
	ck := newConsoleKeys(t)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-r", Username: hubMe.Username, Password: hubMe.Password, Backend: store,
		Verifier: ck.verifier})
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	replies := make(chan *paho.Publish, 4)
	u, _ := url.Parse(srv.URL())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30,
		ConnectUsername: con.Username, ConnectPassword: []byte(con.Password),
		ClientConfig: paho.ClientConfig{ClientID: "ops-1", OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { replies <- pr.Packet; return true, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Disconnect(context.Background())
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	rt := protocol.HubReplyTopic("ops")
	var askRaw func(name string, b []byte, resp string) *protocol.Reply
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	ask := func(name string, args map[string]string, resp string) *protocol.Reply {
		t.Helper()
		return askRaw(name, ck.command(t, ck.ops, name, args), resp)
	}
	askRaw = func(name string, b []byte, resp string) *protocol.Reply {
		t.Helper()
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{ResponseTopic: resp, CorrelationData: []byte(name)}}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-replies:
			r, err := protocol.DecodeReply(p.Payload)
			if err != nil || string(p.Properties.CorrelationData) != name {
				t.Fatalf("reply %v %v", r, err)
			}
			return r
		case <-time.After(3 * time.Second):
			return nil
		}
	}
	r := ask("report", map[string]string{"totem": "t-rep"}, rt)
	if r == nil || !r.OK {
		t.Fatalf("report reply %+v", r)
	}
	var rows []cms.ReportRow
	json.Unmarshal(r.Data, &rows)
	acc, rej := 0, 0
	for _, row := range rows {
		acc += row.Accepted
		rej += row.Rejected
	}
	if acc != 2 || rej != 1 {
		t.Fatalf("rows %+v", rows)
	}
	if r := ask("report", map[string]string{"from": "yesterday"}, rt); r == nil || r.OK {
		t.Fatalf("bad date accepted: %+v", r)
	}
	if r := ask("shutdown", nil, rt); r == nil || r.OK {
		t.Fatalf("unknown command: %+v", r)
	}
	// Signed commands only, each once, in role: a technician gets no report.
	unsigned, _ := protocol.Marshal(protocol.Command{V: 1, ID: "0123456789abcdef", Name: "report"})
	if r := askRaw("unsigned", unsigned, rt); r == nil || r.OK || r.Code != cmdsig.CodeUnsigned {
		t.Fatalf("unsigned report: %+v", r)
	}
	if r := askRaw("tech", ck.command(t, ck.tech, "report", nil), rt); r == nil || r.OK || r.Code != cmdsig.CodeOutOfRole {
		t.Fatalf("technician's report: %+v", r)
	}
	once := ck.command(t, ck.ops, "report", nil)
	if r := askRaw("once", once, rt); r == nil || !r.OK {
		t.Fatalf("signed report: %+v", r)
	}
	if r := askRaw("twice", once, rt); r == nil || r.OK || r.Code != cmdsig.CodeReplayed {
		t.Fatalf("replayed report: %+v", r)
	}
	// A response topic that is not a console's reply topic gets nothing.
	if r := ask("report", nil, "totem/v1/t-rep/cmd"); r != nil {
		t.Fatalf("answered on a foreign topic: %+v", r)
	}
}
