package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/opkind"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// Applied operations are counted by kind and outcome, over a fixed set of
// labels (every declared kind, zero included), and each batch's backend
// time lands in the latency histogram.
func TestStatsByKindAndBatchLatency(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	tot, _ := creds.Generate("t-kinds", creds.RoleTotem)
	users := broker.NewUsers(nil)
	users.Add(hubMe)
	users.Add(tot)
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	store, err := refcms.Open(t.TempDir()+"/cms.db", &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	hctx, hcancel := context.WithCancel(ctx)
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-k", Username: hubMe.Username, Password: hubMe.Password, Backend: store})
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	st := h.Stats()
	if got := st.AppliedByKind(); len(got) != 2*(len(opkind.All())+1) {
		t.Fatalf("%d series before any operation, want every kind and other, twice", len(got))
	}
	tcm := client(ctx, t, srv, tot, "t-kinds", make(chan *paho.Publish, 1))
	for seq := uint64(1); seq <= 2; seq++ {
		b, _ := protocol.Marshal(protocol.Op{V: 1, ID: fmt.Sprintf("%032x", seq), Totem: "t-kinds", Seq: seq,
			Kind: cms.KindConsent, Payload: consentPayload(), Created: time.Now().UTC()})
		if _, err := tcm.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-kinds", protocol.LeafOp), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	for st.Applied.Load() < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("applied %d of 2", st.Applied.Load())
		case <-time.After(10 * time.Millisecond):
		}
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
