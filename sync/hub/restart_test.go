package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
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
	us := totemUsers("t-rs", totems)
	ctx, c := startCentral(t, 2*time.Minute, us...)
	dir := c.Dir
	runHub := func(name string) (*synctest.Hub, *hub.Fleet, func()) {
		fleet, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		o := hub.Options{ClientID: name, Backend: slowCMS{c.CMS, 5 * time.Millisecond}, Fleet: fleet}
		if inProcess {
			o.Local, o.Queue = c.Broker, 64
		}
		h := c.StartHub(o)
		return h, fleet, func() { c.StopHub(h); fleet.Close() }
	}
	h1, fleet1, stop1 := runHub("hub-1")
	time.Sleep(200 * time.Millisecond) // the subscription
	uctx, ucancel := context.WithCancel(ctx)
	upDone := make(chan error, totems)
	var boxes []*outbox.Outbox
	for _, id := range credsOf(c, us) {
		box := synctest.QueuedOutboxAt(t, filepath.Join(dir, id.Username+".db"), each)
		boxes = append(boxes, box)
		up := uplink.New(uplink.Options{Totem: id.Username, URL: c.URL(), Username: id.Username, Password: id.Password,
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
	until(ctx, func() bool {
		return h1.Stats().Applied.Load() >= totems*each/4 && len(fleet1.List(hub.FleetFilter{})) >= totems
	})
	stop1()
	applied1 := h1.Stats().Applied.Load()
	h2, fleet2, stop2 := runHub("hub-2")
	defer stop2()
	if n := len(fleet2.List(hub.FleetFilter{})); n != totems {
		t.Fatalf("the restarted hub's registry lists %d totems, want %d", n, totems)
	}
	for _, box := range boxes {
		drained(ctx, t, box, fmt.Sprintf(" (first hub applied %d)", applied1))
	}
	appliedInOrder(t, c.CMS, totems*each)
	if d := h2.Stats().Dropped.Load() + h1.Stats().Dropped.Load(); d != 0 {
		t.Fatalf("%d dropped after acknowledgement", d)
	}
	t.Logf("first hub applied %d, second %d (duplicates %d)", applied1, h2.Stats().Applied.Load(), h2.Stats().Duplicates.Load())
}
