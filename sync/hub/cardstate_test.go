package hub_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
)

// A totem asks the hub for a card's state in the CMS (before an assisted
// activation, which the CMS refuses for an active card) over the sync and
// ledger topics every broker's ACL already has; a serial the CMS does not
// know is "unknown", and offline the question fails at once.
func TestCardState(t *testing.T) {
	ctx, c := startCentral(t, 30*time.Second, totemUser("t-card"))
	tot := c.Creds("t-card")
	box := synctest.QueuedOutboxAt(t, filepath.Join(t.TempDir(), "outbox.db"), 0)
	up := uplink.New(uplink.Options{Totem: "t-card", URL: c.URL(), Username: tot.Username, Password: tot.Password,
		Outbox: box, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if _, err := up.CardState(ctx, "6090012345678000"); !errors.Is(err, uplink.ErrOffline) {
		t.Fatalf("offline: %v", err)
	}
	c.StartHub(hub.Options{})
	uctx, ucancel := context.WithCancel(ctx)
	udone := make(chan error, 1)
	go func() { udone <- up.Run(uctx) }()
	defer func() { ucancel(); <-udone }()
	if !until(ctx, up.Connected) {
		t.Fatal("the totem did not connect")
	}
	for serial, want := range map[string]string{
		"6090012345678000": string(cms.CardActive), "6090098765432002": string(cms.CardRevoked),
		"6090022222222004": string(cms.CardIssued), "6090000000000000": protocol.CardUnknown,
	} {
		// The subscriptions follow the connection: ask again until the
		// first answer comes (each question is bounded).
		var (
			got string
			err error
		)
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
