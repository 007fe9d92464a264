package hub_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// slowCMS is the reference CMS with a slow commit, so that operations
// arrive faster than they are applied.
type slowCMS struct {
	*refcms.Store
	delay time.Duration
}

func (s slowCMS) ApplyBatch(ctx context.Context, ops []cms.Op) ([]cms.Outcome, error) {
	time.Sleep(s.delay)
	return s.Store.ApplyBatch(ctx, ops)
}

// burst publishes n operations of totem c in sequence, pipelined (QoS 1,
// no wait for each PUBACK), and counts the final results it gets back.
func burst(ctx context.Context, t *testing.T, u *url.URL, c creds.File, salt, n int, finals *atomic.Int64) *autopaho.ConnectionManager {
	t.Helper()
	return burstFrom(ctx, t, u, c, salt, 1, n, finals)
}

// burstFrom is burst from sequence number from on.
func burstFrom(ctx context.Context, t *testing.T, u *url.URL, c creds.File, salt, from, n int, finals *atomic.Int64) *autopaho.ConnectionManager {
	t.Helper()
	id := c.Username
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30,
		ConnectUsername: c.Username, ConnectPassword: []byte(c.Password),
		ClientConfig: paho.ClientConfig{ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if r, err := protocol.DecodeResult(pr.Packet.Payload); err == nil && r.Final() {
					finals.Add(1)
				}
				return true, nil
			}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Disconnect(context.Background()) })
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic(id, protocol.LeafResult), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	p := consentPayload()
	for seq := uint64(from); seq < uint64(from+n); seq++ {
		b, _ := protocol.Marshal(protocol.Op{V: 1, ID: fmt.Sprintf("%016x%016x", salt, seq), Totem: id, Seq: seq,
			Kind: cms.KindConsent, Payload: p, Created: time.Now().UTC()})
		if err := cm.PublishViaQueue(ctx, &autopaho.QueuePublish{Publish: &paho.Publish{
			Topic: protocol.Topic(id, protocol.LeafOp), QoS: 1, Payload: b}}); err != nil {
			t.Fatal(err)
		}
	}
	return cm
}

// A burst larger than the old 4 096-operation queue, arriving much faster
// than the CMS commits: every operation is applied exactly once and in
// order, none acknowledged and dropped, no gap refused (one instance, one
// broker). Before flow control the hub acknowledged every PUBLISH on
// arrival and dropped what did not fit its queue.
func TestBurstLosesNothingAcknowledged(t *testing.T) {
	const totems, each = 6, 1000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := synctest.Start(t, synctest.Options{})
	var ids []creds.File
	for i := range totems {
		ids = append(ids, c.AddUser(synctest.User{Name: fmt.Sprintf("t-burst-%d", i), Role: creds.RoleTotem}))
	}
	hubMe, srv, store := c.HubCreds, c.Broker, c.CMS
	fleet, err := hub.OpenFleet(filepath.Join(t.TempDir(), "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-b", Username: hubMe.Username, Password: hubMe.Password,
		Backend: slowCMS{store, 25 * time.Millisecond}, Fleet: fleet})
	hctx, hcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the subscription
	u, _ := url.Parse(srv.URL())
	var finals atomic.Int64
	for i, c := range ids {
		burst(ctx, t, u, c, i+1, each, &finals)
	}
	for finals.Load() < totems*each && h.Stats().Dropped.Load() == 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	st := h.Stats()
	if d := st.Dropped.Load(); d != 0 {
		t.Fatalf("%d operations acknowledged to the broker and dropped", d)
	}
	if g, dup := st.Gaps.Load(), st.Duplicates.Load(); g != 0 || dup != 0 {
		t.Fatalf("gaps %d, duplicates %d: want none", g, dup)
	}
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != totems*each || finals.Load() != totems*each {
		t.Fatalf("applied %d, final results %d, want %d", len(audit), finals.Load(), totems*each)
	}
	last := map[string]uint64{}
	for _, a := range audit {
		if a.Seq != last[a.Totem]+1 {
			t.Fatalf("%s: seq %d applied after %d", a.Totem, a.Seq, last[a.Totem])
		}
		last[a.Totem] = a.Seq
	}
	// The registry saw every totem and the hub's answer to its last one.
	for _, ts := range fleet.List(hub.FleetFilter{}) {
		if ts.Status != protocol.Online || ts.Last == nil || ts.Last.Seq != each || ts.Last.Processing != protocol.ProcessingAccepted {
			t.Fatalf("registry: %+v", ts)
		}
	}
	t.Logf("%d batches", st.Batches.Load())
}
