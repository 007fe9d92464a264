package hub_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub"
)

// With the embedded broker in its process (Options.Local) the hub takes
// the operations in-process and, its queue full, holds the totems back
// instead of letting the broker store what it has not acknowledged: a
// burst many times the queue, arriving much faster than the CMS commits,
// is applied exactly once and in order, the queue never past its bound,
// nothing acknowledged and dropped, no gap. (Before, an embedded hub
// took everything over MQTT into a queue of at least 65 535.)
func TestLocalBrokerHoldsTheTotems(t *testing.T) {
	const totems, each, queue = 5, 400, 64
	us := totemUsers("t-local", totems)
	ctx, c := startCentral(t, 2*time.Minute, us...)
	store := c.CMS
	h := c.StartHub(hub.Options{Backend: slowCMS{store, 10 * time.Millisecond}, Local: c.Broker, Queue: queue})
	var finals atomic.Int64
	for i, tc := range credsOf(c, us) {
		burst(ctx, t, c.URL(), tc, i+1, each, &finals)
	}
	most := 0
	for finals.Load() < totems*each && ctx.Err() == nil {
		most = max(most, h.Queued())
		time.Sleep(5 * time.Millisecond)
	}
	st := h.Stats()
	if most > queue {
		t.Fatalf("%d queued, bound %d", most, queue)
	}
	if st.Full.Load() == 0 {
		t.Fatal("the queue was never full: the totems were not held back")
	}
	if d, g, dup := st.Dropped.Load(), st.Gaps.Load(), st.Duplicates.Load(); d != 0 || g != 0 || dup != 0 {
		t.Fatalf("dropped %d, gaps %d, duplicates %d: want none", d, g, dup)
	}
	appliedInOrder(t, store, totems*each)
	if finals.Load() != totems*each {
		t.Fatalf("final results %d, want %d", finals.Load(), totems*each)
	}
}
