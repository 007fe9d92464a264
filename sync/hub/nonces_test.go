package hub_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Two hub processes on one PostgreSQL database (each on a broker of its
// own, so that the test says which one a command reaches) share the
// record of console commands: a command one executed, replayed to the
// other, is refused as replayed; of one command sent to both at once,
// exactly one runs it.
func TestNonceReplayAcrossHubs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.Private(t, pgtest.Options{NoFsync: true, Migrate: func(ctx context.Context, u string) error {
		_, err := pgstore.Migrate(ctx, u)
		return err
	}})
	dbURL, err := srv.NewDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ck := newConsoleKeys(t)
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	con, _ := creds.Generate("ops", creds.RoleConsole)
	type instance struct {
		srv     *broker.Server
		cm      *autopaho.ConnectionManager
		replies chan *paho.Publish
	}
	var hubs [2]instance
	for i := range hubs {
		users := broker.NewUsers(nil)
		users.Add(hubMe)
		users.Add(con)
		bs, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
		if err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		pg, err := pgstore.Open(ctx, dbURL, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		store, err := refcms.New(pg.CMS(), &refcms.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		v := cmdsig.NewVerifier(cmdsig.HubTarget, []cmdsig.PublicKey{ck.ops.Public(), ck.tech.Public()},
			&hub.SharedNonces{Record: pg.AdmitNonce})
		h := hub.New(hub.Options{URL: bs.URL(), ClientID: fmt.Sprintf("hub-%d", i), Username: hubMe.Username,
			Password: hubMe.Password, Backend: store, Verifier: v})
		hctx, hcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- h.Run(hctx) }()
		defer func() { hcancel(); <-done }()
		if err := h.AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
		replies := make(chan *paho.Publish, 4)
		u, _ := url.Parse(bs.URL())
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30,
			ConnectUsername: con.Username, ConnectPassword: []byte(con.Password),
			ClientConfig: paho.ClientConfig{ClientID: con.Username, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) { replies <- pr.Packet; return true, nil }}}})
		if err != nil {
			t.Fatal(err)
		}
		defer cm.Disconnect(context.Background())
		if err := cm.AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.HubReplyTopic("ops"), QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		hubs[i] = instance{bs, cm, replies}
	}
	send := func(i int, payload []byte) {
		t.Helper()
		if _, err := hubs[i].cm.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: payload,
			Properties: &paho.PublishProperties{ResponseTopic: protocol.HubReplyTopic("ops"), CorrelationData: []byte("c")}}); err != nil {
			t.Fatal(err)
		}
	}
	reply := func(i int) *protocol.Reply {
		t.Helper()
		select {
		case p := <-hubs[i].replies:
			r, err := protocol.DecodeReply(p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("hub %d: no reply", i)
		}
		return nil
	}
	time.Sleep(200 * time.Millisecond) // the hubs' subscriptions
	cmd := ck.command(t, ck.ops, "report", nil)
	send(0, cmd)
	if r := reply(0); !r.OK {
		t.Fatalf("hub 0, a fresh command: %+v", r)
	}
	send(1, cmd)
	if r := reply(1); r.OK || r.Code != cmdsig.CodeReplayed {
		t.Fatalf("hub 1, the command hub 0 executed: %+v, want %s", r, cmdsig.CodeReplayed)
	}
	send(1, ck.command(t, ck.ops, "report", nil))
	if r := reply(1); !r.OK {
		t.Fatalf("hub 1, a fresh command: %+v", r)
	}
	for range 5 {
		cmd := ck.command(t, ck.ops, "report", nil)
		send(0, cmd)
		send(1, cmd)
		if a, b := reply(0), reply(1); a.OK == b.OK || (!a.OK && a.Code != cmdsig.CodeReplayed) || (!b.OK && b.Code != cmdsig.CodeReplayed) {
			t.Fatalf("one command to both hubs at once: %+v and %+v, want one run and one replayed", a, b)
		}
	}
}
