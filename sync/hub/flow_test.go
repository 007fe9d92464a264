package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
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
func burst(ctx context.Context, t *testing.T, brokerURL string, c creds.File, salt, n int, finals *atomic.Int64) *autopaho.ConnectionManager {
	t.Helper()
	return burstFrom(ctx, t, brokerURL, c, salt, 1, n, finals)
}

// burstFrom is burst from sequence number from on.
func burstFrom(ctx context.Context, t *testing.T, brokerURL string, c creds.File, salt, from, n int, finals *atomic.Int64) *autopaho.ConnectionManager {
	t.Helper()
	id := c.Username
	cm := dial(ctx, t, brokerURL, c, id, func(p *paho.Publish) {
		if r, err := protocol.DecodeResult(p.Payload); err == nil && r.Final() {
			finals.Add(1)
		}
	}, protocol.Topic(id, protocol.LeafResult))
	for seq := uint64(from); seq < uint64(from+n); seq++ {
		b := opBytes(protocol.Op{ID: fmt.Sprintf("%016x%016x", salt, seq), Totem: id, Seq: seq})
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
	us := totemUsers("t-burst", totems)
	ctx, c := startCentral(t, 2*time.Minute, us...)
	store := c.CMS
	fleet, err := hub.OpenFleet(filepath.Join(t.TempDir(), "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	h := c.StartHub(hub.Options{Backend: slowCMS{store, 25 * time.Millisecond}, Fleet: fleet})
	time.Sleep(200 * time.Millisecond) // the subscription
	var finals atomic.Int64
	for i, tc := range credsOf(c, us) {
		burst(ctx, t, c.URL(), tc, i+1, each, &finals)
	}
	until(ctx, func() bool { return finals.Load() >= totems*each || h.Stats().Dropped.Load() != 0 })
	st := h.Stats()
	if d := st.Dropped.Load(); d != 0 {
		t.Fatalf("%d operations acknowledged to the broker and dropped", d)
	}
	if g, dup := st.Gaps.Load(), st.Duplicates.Load(); g != 0 || dup != 0 {
		t.Fatalf("gaps %d, duplicates %d: want none", g, dup)
	}
	appliedInOrder(t, store, totems*each)
	if finals.Load() != totems*each {
		t.Fatalf("final results %d, want %d", finals.Load(), totems*each)
	}
	// The registry saw every totem and the hub's answer to its last one.
	for _, ts := range fleet.List(hub.FleetFilter{}) {
		if ts.Status != protocol.Online || ts.Last == nil || ts.Last.Seq != each || ts.Last.Processing != protocol.ProcessingAccepted {
			t.Fatalf("registry: %+v", ts)
		}
	}
	t.Logf("%d batches", st.Batches.Load())
}
