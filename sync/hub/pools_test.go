package hub_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// heldLedger is the reference CMS whose Ledger waits for release: the
// ledger requests being answered stay in their slots.
type heldLedger struct {
	*refcms.Store
	release chan struct{}
	entered chan struct{}
}

func (s *heldLedger) Ledger(totem string, from uint64, max int) (uint64, []cms.LedgerEntry, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.Store.Ledger(totem, from, max)
}

// A totem flooding its sync topic while the hub's answers are slow takes
// no slot from the consoles: every console command is answered, the
// floods' excess is counted and not logged. With one pool for both, the
// resync requests held all four slots and the commands were dropped.
func TestSyncFloodLeavesConsoleCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	con, _ := creds.Generate("ops", creds.RoleConsole)
	tot, _ := creds.Generate("t-flood", creds.RoleTotem)
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
	backend := &heldLedger{Store: store, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	var logs lockedBuf
	hctx, hcancel := context.WithCancel(ctx)
	ck := newConsoleKeys(t)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-f", Username: hubMe.Username, Password: hubMe.Password,
		Backend: backend, Verifier: ck.verifier, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	released := false
	release := func() {
		if !released {
			released = true
			close(backend.release)
		}
	}
	defer release()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}

	ledgers := make(chan *paho.Publish, 64)
	tcm := client(ctx, t, srv, tot, "t-flood", ledgers)
	if _, err := tcm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic("t-flood", protocol.LeafLedger), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	const flood = 40
	for i := range flood {
		b, _ := protocol.Marshal(protocol.LedgerRequest{V: 1, ID: "sync-" + string(rune('a'+i%26)), From: 1, Max: 16})
		if _, err := tcm.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-flood", protocol.LeafSync), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-backend.entered:
	case <-ctx.Done():
		t.Fatal("no ledger request reached the backend")
	}

	replies := make(chan *paho.Publish, 4)
	ccm := client(ctx, t, srv, con, "ops-f", replies)
	rt := protocol.HubReplyTopic("ops")
	if _, err := ccm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	const commands = 5
	answered := 0
	for range commands {
		b := ck.command(t, ck.tech, "sendlog", map[string]string{"max": "5"})
		if _, err := ccm.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte("c")}}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-replies:
			if r, err := protocol.DecodeReply(p.Payload); err == nil && r.OK {
				answered++
			}
		case <-time.After(3 * time.Second):
		}
	}
	if answered != commands {
		t.Fatalf("%d of %d console commands answered during the sync flood", answered, commands)
	}
	if d := h.Stats().SyncDropped.Load(); d < flood-syncAllowed {
		t.Fatalf("%d sync requests counted as dropped, want at least %d", d, flood-syncAllowed)
	}
	release()
	// The two requests answered get their ledgers (before the hub stops:
	// a reply in flight at Run's end waits for its timeout).
	for range 2 {
		select {
		case <-ledgers:
		case <-ctx.Done():
			t.Fatal("the requests being answered got no ledger")
		}
	}
	if s := logs.String(); strings.Contains(s, "dropped") {
		t.Fatalf("drops logged:\n%s", s)
	}
}

// syncAllowed is at most how many of a burst of sync requests the hub
// takes while none is answered: its pool's slots and a totem's burst.
const syncAllowed = 2 + 8
