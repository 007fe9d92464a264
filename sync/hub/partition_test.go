package hub_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
)

// fixedShare is a Partition owning a fixed set of totems.
type fixedShare map[string]bool

func (f fixedShare) Owns(totem string) bool        { return f[totem] }
func (fixedShare) Rebalance(context.Context) error { return nil }
func (f fixedShare) Held() []int                   { return make([]int, len(f)) }
func (f fixedShare) Totems(context.Context) ([]string, error) {
	return slices.Collect(maps.Keys(f)), nil
}

// fleetList is the fleet's totems, as the registry lists them.
type fleetList struct {
	mu    sync.Mutex
	names []string
}

func (l *fleetList) add(names ...string) {
	l.mu.Lock()
	l.names = append(l.names, names...)
	l.mu.Unlock()
}

// movingShare is a Partition whose totems the test moves (set), among
// the fleet's (list).
type movingShare struct {
	list *fleetList
	mu   sync.Mutex
	own  map[string]bool
}

func (m *movingShare) set(own ...string) {
	m.mu.Lock()
	m.own = map[string]bool{}
	for _, t := range own {
		m.own[t] = true
	}
	m.mu.Unlock()
}

func (m *movingShare) Owns(totem string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.own[totem]
}
func (*movingShare) Rebalance(context.Context) error { return nil }
func (m *movingShare) Held() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return make([]int, len(m.own))
}
func (m *movingShare) Totems(context.Context) ([]string, error) {
	m.list.mu.Lock()
	defer m.list.mu.Unlock()
	return slices.Clone(m.list.names), nil
}

// startHubs starts n hubs named hub-0… on c's broker, set (backend,
// partition) by set, each connected before the next.
func startHubs(t *testing.T, c *synctest.Central, n int, set func(i int, o *hub.Options)) []*hub.Hub {
	t.Helper()
	var hubs []*hub.Hub
	for i := range n {
		o := hub.Options{ClientID: fmt.Sprintf("hub-%d", i)}
		set(i, &o)
		hubs = append(hubs, c.StartHub(o).Hub)
	}
	return hubs
}

// appliers is the reference CMS noting which hub applied each totem's
// operations.
type appliers struct {
	*refcms.Store
	hub string
	mu  *sync.Mutex
	by  map[string]map[string]bool // totem → hubs
}

func (a appliers) ApplyBatch(ctx context.Context, ops []cms.Op) ([]cms.Outcome, error) {
	a.mu.Lock()
	for _, op := range ops {
		if a.by[op.Totem] == nil {
			a.by[op.Totem] = map[string]bool{}
		}
		a.by[op.Totem][a.hub] = true
	}
	a.mu.Unlock()
	return a.Store.ApplyBatch(ctx, ops)
}

// Two partitioned hubs on one external broker, both knowing every totem:
// each subscribes to its own totems' operations only, so the broker
// delivers each operation to its owner alone (no foreign copy dropped),
// and every operation is applied once, none refused. With the shared
// subscription each totem's operations went to both; with totem/+/op
// each hub received all and dropped the other's half.
func TestPartitionedHubs(t *testing.T) {
	const totems, each = 4, 200
	us := totemUsers("t-part", totems)
	ctx, c := startCentral(t, time.Minute, us...)
	store := c.CMS
	ids := credsOf(c, us)
	list := &fleetList{}
	shares := []*movingShare{{list: list}, {list: list}}
	var own [2][]string
	for i, id := range ids {
		list.add(id.Username)
		own[i%2] = append(own[i%2], id.Username)
	}
	shares[0].set(own[0]...)
	shares[1].set(own[1]...)
	var mu sync.Mutex
	by := map[string]map[string]bool{}
	hubs := startHubs(t, c, len(shares), func(i int, o *hub.Options) {
		o.Backend, o.Partition = appliers{store, o.ClientID, &mu, by}, shares[i]
	})
	time.Sleep(200 * time.Millisecond) // the subscriptions
	var finals atomic.Int64
	for i, id := range ids {
		burst(ctx, t, c.URL(), id, i+1, each, &finals)
	}
	until(ctx, func() bool { return finals.Load() >= totems*each })
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != totems*each || finals.Load() != totems*each {
		t.Fatalf("applied %d, final results %d, want %d", len(audit), finals.Load(), totems*each)
	}
	for i, h := range hubs {
		st := h.Stats()
		if g, d := st.Gaps.Load(), st.Duplicates.Load(); g != 0 || d != 0 {
			t.Errorf("hub %d: gaps %d, duplicates %d; want none", i, g, d)
		}
		if a, f := st.Applied.Load(), st.Foreign.Load(); a != totems/2*each || f != 0 {
			t.Errorf("hub %d: applied %d, foreign %d; want %d, 0", i, a, f, totems/2*each)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, id := range ids {
		if want := fmt.Sprintf("hub-%d", i%2); len(by[id.Username]) != 1 || !by[id.Username][want] {
			t.Errorf("%s applied by %v, want %s only", id.Username, by[id.Username], want)
		}
	}
}

// policyCounter is the reference CMS counting the hub's policy reads: one
// per totem it sends the policy to as it comes online.
type policyCounter struct {
	*refcms.Store
	n *atomic.Int64
}

func (p policyCounter) Policy(ctx context.Context) (cms.Policy, error) {
	p.n.Add(1)
	return p.Store.Policy(ctx)
}

// A totem coming online gets its policy (and technician set) from the
// hub that owns it only, not from every partitioned hub.
func TestPartitionedOnlineOwnerOnly(t *testing.T) {
	ctx, c := startCentral(t, time.Minute, totemUser("t-online-1"))
	totem := c.Creds("t-online-1")
	reads := []*atomic.Int64{new(atomic.Int64), new(atomic.Int64)}
	shares := []fixedShare{{totem.Username: true}, {}}
	startHubs(t, c, len(shares), func(i int, o *hub.Options) {
		o.Backend, o.Partition = policyCounter{c.CMS, reads[i]}, shares[i]
	})
	policies := make(chan struct{}, 8)
	cm := dial(ctx, t, c.URL(), totem, totem.Username, func(p *paho.Publish) {
		if _, leaf, _ := protocol.ParseTopic(p.Topic); leaf == protocol.LeafPolicy {
			policies <- struct{}{}
		}
	}, protocol.Topic(totem.Username, protocol.LeafPolicy))
	b, _ := protocol.Marshal(protocol.State{V: protocol.Version, Totem: totem.Username, Status: protocol.Online, Session: 1})
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem.Username, protocol.LeafState), QoS: 1, Retain: true, Payload: b}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-policies:
	case <-ctx.Done():
		t.Fatal("no policy for the totem online")
	}
	time.Sleep(300 * time.Millisecond) // another hub's copy would come meanwhile
	if len(policies) != 0 || reads[0].Load() != 1 || reads[1].Load() != 0 {
		t.Errorf("policies from the hubs: owner read %d, other %d; %d more copies", reads[0].Load(), reads[1].Load(), len(policies))
	}
}

// A partitioned hub's subscriptions follow the fleet and its share: a
// totem provisioned while the hub runs (in the list at a later
// rebalance) is subscribed within a couple of rebalances and its
// operations applied; a totem moved to another hub moves its
// subscription, and the first hub no longer receives its operations.
func TestPartitionedSubscriptionsFollow(t *testing.T) {
	const each = 50
	ctx, c := startCentral(t, time.Minute, totemUsers("t-follow", 3)...)
	ids := credsOf(c, totemUsers("t-follow", 3))
	a, b, late := ids[0], ids[1], ids[2]
	store := c.CMS
	list := &fleetList{names: []string{a.Username, b.Username}}
	shares := []*movingShare{{list: list}, {list: list}}
	shares[0].set(a.Username, late.Username)
	shares[1].set(b.Username)
	var mu sync.Mutex
	by := map[string]map[string]bool{}
	hubs := startHubs(t, c, len(shares), func(i int, o *hub.Options) {
		o.Backend, o.Partition = appliers{store, o.ClientID, &mu, by}, shares[i]
	})
	h0, h1 := hubs[0], hubs[1]
	if !hub.OpsSubscribed(h0, a.Username) || hub.OpsSubscribed(h0, b.Username) || hub.OpsSubscribed(h0, late.Username) ||
		!hub.OpsSubscribed(h1, b.Username) || hub.OpsSubscribed(h1, a.Username) {
		t.Fatal("the hubs' first subscriptions are not their own known totems'")
	}
	// await polls cond, bounded: a few rebalances (one a second).
	await := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatal(what)
			}
		}
	}
	var finals atomic.Int64
	want := int64(0)
	finalsReach := func(n int64) {
		t.Helper()
		want += n
		await(fmt.Sprintf("final results: want %d", want), func() bool { return finals.Load() >= want })
	}

	// A totem provisioned while the hubs run.
	list.add(late.Username)
	await("the provisioned totem's operations not subscribed", func() bool { return hub.OpsSubscribed(h0, late.Username) })
	burst(ctx, t, c.URL(), late, 7, each, &finals)
	finalsReach(each)

	// a moves from hub 0 to hub 1.
	cmA := burst(ctx, t, c.URL(), a, 1, each, &finals)
	finalsReach(each)
	cmA.Disconnect(ctx)
	applied0 := h0.Stats().Applied.Load()
	shares[1].set(a.Username, b.Username)
	await("hub 1 not subscribed to the moved totem", func() bool { return hub.OpsSubscribed(h1, a.Username) })
	shares[0].set(late.Username)
	await("hub 0 still subscribed to the moved totem", func() bool { return !hub.OpsSubscribed(h0, a.Username) })
	burstFrom(ctx, t, c.URL(), a, 1, each+1, each, &finals)
	finalsReach(each)
	if got := h0.Stats().Applied.Load(); got != applied0 {
		t.Errorf("hub 0 applied %d after the move, want none", got-applied0)
	}
	for i, h := range hubs {
		st := h.Stats()
		if f, g, d := st.Foreign.Load(), st.Gaps.Load(), st.Duplicates.Load(); f != 0 || g != 0 || d != 0 {
			t.Errorf("hub %d: foreign %d, gaps %d, duplicates %d; want none", i, f, g, d)
		}
	}
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 3*each {
		t.Errorf("applied %d, want %d", len(audit), 3*each)
	}
	mu.Lock()
	defer mu.Unlock()
	if !by[a.Username]["hub-0"] || !by[a.Username]["hub-1"] || len(by[late.Username]) != 1 || !by[late.Username]["hub-0"] {
		t.Errorf("applied by %v", by)
	}
}
