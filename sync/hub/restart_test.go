package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/uplink"
)

// The hub stops in the middle of a storm and a new one takes over: every
// operation is applied exactly once and in order (the totems send again
// what got no result; the CMS record answers the copies as duplicates),
// and the new hub's registry, read from disk, still lists every totem;
// with the hub on the broker over MQTT and in-process (Options.Local: what
// the first one held back or queued is sent again by the totems).
func TestHubRestartMidStorm(t *testing.T) {
	t.Run("mqtt", func(t *testing.T) { restartMidStorm(t, false) })
	t.Run("in-process", func(t *testing.T) { restartMidStorm(t, true) })
}

func restartMidStorm(t *testing.T, inProcess bool) {
	const totems, each = 8, 150
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
	var ids []creds.File
	for i := range totems {
		c, _ := creds.Generate(fmt.Sprintf("t-rs-%d", i), creds.RoleTotem)
		users.Add(c)
		ids = append(ids, c)
	}
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	store, err := refcms.Open(filepath.Join(dir, "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runHub := func(name string) (*hub.Hub, *hub.Fleet, func()) {
		fleet, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		o := hub.Options{URL: srv.URL(), ClientID: name, Username: hubMe.Username, Password: hubMe.Password,
			Backend: slowCMS{store, 5 * time.Millisecond}, Fleet: fleet}
		if inProcess {
			o.Local, o.Queue = srv, 64
		}
		h := hub.New(o)
		hctx, hcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- h.Run(hctx) }()
		if err := h.AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
		return h, fleet, func() { hcancel(); <-done; fleet.Close() }
	}
	h1, fleet1, stop1 := runHub("hub-1")
	time.Sleep(200 * time.Millisecond) // the subscription
	p := consentPayload()
	uctx, ucancel := context.WithCancel(ctx)
	upDone := make(chan error, totems)
	var boxes []*outbox.Outbox
	for _, c := range ids {
		box, err := outbox.Open(filepath.Join(dir, c.Username+".db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer box.Close()
		for range each {
			if _, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		boxes = append(boxes, box)
		up := uplink.New(uplink.Options{Totem: c.Username, URL: srv.URL(), Username: c.Username, Password: c.Password,
			Outbox: box, ResendAfter: time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
		go func() { upDone <- up.Run(uctx) }()
	}
	defer func() {
		ucancel()
		for range totems {
			<-upDone
		}
	}()
	// Stop the first hub once it has applied part of the storm and heard
	// from every totem.
	for (h1.Stats().Applied.Load() < totems*each/4 || len(fleet1.List(hub.FleetFilter{})) < totems) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	stop1()
	applied1 := h1.Stats().Applied.Load()
	h2, fleet2, stop2 := runHub("hub-2")
	defer stop2()
	if n := len(fleet2.List(hub.FleetFilter{})); n != totems {
		t.Fatalf("the restarted hub's registry lists %d totems, want %d", n, totems)
	}
	for _, box := range boxes {
		for {
			q, err := box.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if q.Depth == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("backlog stuck at %d (first hub applied %d)", q.Depth, applied1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, a := range audit {
		if a.Seq != last[a.Totem]+1 {
			t.Fatalf("%s: seq %d applied after %d", a.Totem, a.Seq, last[a.Totem])
		}
		last[a.Totem] = a.Seq
	}
	if len(audit) != totems*each {
		t.Fatalf("applied %d, want %d", len(audit), totems*each)
	}
	if d := h2.Stats().Dropped.Load() + h1.Stats().Dropped.Load(); d != 0 {
		t.Fatalf("%d dropped after acknowledgement", d)
	}
	t.Logf("first hub applied %d, second %d (duplicates %d)", applied1, h2.Stats().Applied.Load(), h2.Stats().Duplicates.Load())
}
