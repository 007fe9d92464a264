package hub_test

import (
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/opkind"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// Applied operations are counted by kind and outcome, over a fixed set of
// labels (every declared kind, zero included), and each batch's backend
// time lands in the latency histogram.
func TestStatsByKindAndBatchLatency(t *testing.T) {
	ctx, c := startCentral(t, 30*time.Second, totemUser("t-kinds"))
	h := c.StartHub(hub.Options{})
	st := h.Stats()
	if got := st.AppliedByKind(); len(got) != 2*(len(opkind.All())+1) {
		t.Fatalf("%d series before any operation, want every kind and other, twice", len(got))
	}
	tcm := client(ctx, t, c.URL(), c.Creds("t-kinds"), "t-kinds", make(chan *paho.Publish, 1))
	for seq := uint64(1); seq <= 2; seq++ {
		sendOp(ctx, t, tcm, protocol.Op{Totem: "t-kinds", Seq: seq})
	}
	if !until(ctx, func() bool { return st.Applied.Load() >= 2 }) {
		t.Fatalf("applied %d of 2", st.Applied.Load())
	}
	m := st.AppliedByKind()
	if n := m[[2]string{cms.KindConsent, hub.OutcomeAccepted}] + m[[2]string{cms.KindConsent, hub.OutcomeRejected}]; n != 2 {
		t.Fatalf("consent applied %d, want 2: %v", n, m)
	}
	count, sum, buckets := st.BatchLatency()
	if count == 0 || sum <= 0 || buckets[hub.BatchBuckets[len(hub.BatchBuckets)-1]] > count {
		t.Fatalf("batch latency: count %d sum %v buckets %v", count, sum, buckets)
	}
}
