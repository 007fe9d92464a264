package faults

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
	"github.com/aslcns/totem/sync/outbox"
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
	var ids []creds.File
	for i := range totems {
		c, _ := creds.Generate(fmt.Sprintf("t-storm-%02d", i), creds.RoleTotem)
		ids = append(ids, c)
	}
	c := &central{t: t, kind: kind}
	c.hubMe, _ = creds.Generate("totemhub", creds.RoleHub)
	if kind == mosquitto {
		c.mq = newMosq(t, append([]creds.File{c.hubMe}, ids...)...) // skips without mosquitto
	} else {
		c.users = broker.NewUsers(nil)
		c.users.Add(c.hubMe)
		for _, id := range ids {
			c.users.Add(id)
		}
	}
	var err error
	if c.store, err = refcms.Open(filepath.Join(t.TempDir(), "cms.db"), &refcms.Options{Seed: cms.DemoCards()}); err != nil {
		t.Fatal(err)
	}
	c.be = c.store
	c.startBroker("127.0.0.1:0")
	t.Cleanup(func() {
		c.stopHub()
		c.stopBroker()
		c.store.Close()
	})
	for range hubs {
		c.startHub()
	}
	time.Sleep(200 * time.Millisecond) // the subscriptions

	p := payload()
	var boxes []*outbox.Outbox
	for range ids {
		box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { box.Close() })
		for range each {
			if _, err := box.Enqueue(cms.KindConsent, p, time.Now(), time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		boxes = append(boxes, box)
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
		c.mu.Lock()
		defer c.mu.Unlock()
		var n int64
		for _, r := range c.hubs {
			n += r.h.Stats().Applied.Load()
		}
		return n
	}
	for applied() < int64(totems*each/4) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	oldest := c.hubs[0]
	c.mu.Unlock()
	c.stop(oldest)
	if oldest.h.Stats().Dropped.Load() != 0 {
		t.Fatalf("the stopped instance dropped %d acknowledged operations", oldest.h.Stats().Dropped.Load())
	}
	c.startHub()
	for i, box := range boxes {
		for {
			q, err := box.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if q.Depth == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: backlog stuck at %d", ids[i].Username, q.Depth)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	audit, err := c.store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, a := range audit {
		if a.Seq != last[a.Totem]+1 {
			t.Fatalf("%s: seq %d applied after %d (twice or out of order)", a.Totem, a.Seq, last[a.Totem])
		}
		last[a.Totem] = a.Seq
	}
	if len(audit) != totems*each {
		t.Fatalf("applied %d, want %d", len(audit), totems*each)
	}
	c.mu.Lock()
	for _, r := range c.hubs {
		if d := r.h.Stats().Dropped.Load(); d != 0 {
			t.Errorf("an instance dropped %d acknowledged operations", d)
		}
	}
	c.mu.Unlock()
	t.Logf("%s, %d hub instance(s), %d totems x %d, one restart mid-storm: all applied once, in order", kind, hubs, totems, each)
}
