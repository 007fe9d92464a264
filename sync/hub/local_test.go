package hub_test

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/synctest"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := synctest.Start(t, synctest.Options{})
	var ids []creds.File
	for i := range totems {
		ids = append(ids, c.AddUser(synctest.User{Name: fmt.Sprintf("t-local-%d", i), Role: creds.RoleTotem}))
	}
	hubMe, srv, store := c.HubCreds, c.Broker, c.CMS
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: "hub-l", Username: hubMe.Username, Password: hubMe.Password,
		Backend: slowCMS{store, 10 * time.Millisecond}, Local: srv, Queue: queue})
	hctx, hcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	defer func() { hcancel(); <-done }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL())
	var finals atomic.Int64
	for i, c := range ids {
		burst(ctx, t, u, c, i+1, each, &finals)
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
}
