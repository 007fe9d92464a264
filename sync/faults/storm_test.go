package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
)

// TestReconnectStorm is a regional outage in small: totems with a backlog
// all connect at once, on each broker, to one hub instance or two sharing
// $share/totemhub, and the oldest instance restarts in the middle of the
// storm. Every operation is applied exactly once and, per totem, in order;
// no hub drops an operation it acknowledged.
func TestReconnectStorm(t *testing.T) {
	for _, kind := range brokers {
		for _, hubs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/hubs=%d", kind, hubs), func(t *testing.T) { storm(t, kind, hubs) })
		}
	}
}

func storm(t *testing.T, kind string, hubs int) {
	totems, each := 24, 40
	if testing.Short() {
		totems, each = 8, 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var names []string
	for i := range totems {
		names = append(names, fmt.Sprintf("t-storm-%02d", i))
	}
	c := startCentral(t, kind, names...)
	var ids []creds.File
	for _, n := range names {
		ids = append(ids, c.Creds(n))
	}
	for range hubs {
		c.startHub()
	}
	time.Sleep(200 * time.Millisecond) // the subscriptions

	var boxes []*outbox.Outbox
	for range ids {
		boxes = append(boxes, synctest.QueuedOutbox(t, each))
	}
	uctx, ucancel := context.WithCancel(ctx)
	done := make(chan error, totems)
	for i, id := range ids {
		up := uplink.New(uplink.Options{Totem: id.Username, URL: c.url(), TLS: c.tls(), Username: id.Username, Password: id.Password,
			Outbox: boxes[i], ResendAfter: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
		go func() { done <- up.Run(uctx) }()
	}
	defer func() {
		ucancel()
		for range totems {
			<-done
		}
	}()
	// The oldest instance restarts once a quarter of the storm is applied.
	applied := func() int64 {
		var n int64
		for _, r := range c.Hubs() {
			n += r.Stats().Applied.Load()
		}
		return n
	}
	for applied() < int64(totems*each/4) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	oldest := c.oldest()
	c.StopHub(oldest)
	if oldest.Stats().Dropped.Load() != 0 {
		t.Fatalf("the stopped instance dropped %d acknowledged operations", oldest.Stats().Dropped.Load())
	}
	c.startHub()
	for i, box := range boxes {
		synctest.AwaitDrained(t, ctx, box, ids[i].Username)
	}
	audit, err := c.store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	synctest.AssertInOrder(t, audit, totems*each)
	for _, r := range c.Hubs() {
		if d := r.Stats().Dropped.Load(); d != 0 {
			t.Errorf("an instance dropped %d acknowledged operations", d)
		}
	}
	t.Logf("%s, %d hub instance(s), %d totems x %d, one restart mid-storm: all applied once, in order", kind, hubs, totems, each)
}
