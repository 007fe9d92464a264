package hub_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/uplink"
)

// A totem asks the hub for a card's state in the CMS (before an assisted
// activation, which the CMS refuses for an active card) over the sync and
// ledger topics every broker's ACL already has; a serial the CMS does not
// know is "unknown", and offline the question fails at once.
func TestCardState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	tot, _ := creds.Generate("t-card", creds.RoleTotem)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
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
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	up := uplink.New(uplink.Options{Totem: "t-card", URL: srv.URL(), Username: tot.Username, Password: tot.Password,
		Outbox: box, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if _, err := up.CardState(ctx, "6090012345678000"); !errors.Is(err, uplink.ErrOffline) {
		t.Fatalf("offline: %v", err)
	}
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-c", Username: hubMe.Username, Password: hubMe.Password, Backend: store})
	hctx, hcancel := context.WithCancel(ctx)
	hdone := make(chan error, 1)
	go func() { hdone <- h.Run(hctx) }()
	defer func() { hcancel(); <-hdone }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	uctx, ucancel := context.WithCancel(ctx)
	udone := make(chan error, 1)
	go func() { udone <- up.Run(uctx) }()
	defer func() { ucancel(); <-udone }()
	for !up.Connected() {
		select {
		case <-ctx.Done():
			t.Fatal("the totem did not connect")
		case <-time.After(10 * time.Millisecond):
		}
	}
	for serial, want := range map[string]string{
		"6090012345678000": string(cms.CardActive), "6090098765432002": string(cms.CardRevoked),
		"6090022222222004": string(cms.CardIssued), "6090000000000000": protocol.CardUnknown,
	} {
		// The subscriptions follow the connection: ask again until the
		// first answer comes (each question is bounded).
		var got string
		for got == "" && ctx.Err() == nil {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			got, err = up.CardState(actx, serial)
			acancel()
		}
		if got != want {
			t.Errorf("%s: %q, %v; want %q", serial, got, err, want)
		}
	}
}
