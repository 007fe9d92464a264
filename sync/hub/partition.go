package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Partition is the hub's share of the totems when several hub processes
// on an external broker split them (Options.Partition; cms/pgstore's
// Leases): each totem has one owner at a time, which alone applies its
// operations, so that consecutive operations of a totem no longer go to
// different hubs whose batches wait on each other's ledger rows. The hub
// then subscribes to every operation, not shared, and drops those of the
// totems it does not own (their owner received its own copy); a totem
// owned by no one for a moment (a hub died) sends again after its
// silence, and the ledger is exactly-once whoever applies.
//
// The hub subscribes to the operations of each totem it owns, one
// concrete filter per totem (totem/v1/<id>/op, not shared), among the
// totems the fleet knows (Totems, read again every rebalanceEvery): the
// broker delivers each operation to its owner only, instead of to every
// hub, which dropped the foreign ones. The set follows the buckets: the
// totems of a bucket taken are subscribed at the same rebalance, those of
// a bucket given up unsubscribed once Owns says no (after its grace), so
// that during a hand-over both hubs are subscribed for a moment and the
// ledger keeps it exactly-once; a new connection subscribes them all
// again. A totem the fleet does not know yet (provisioned less than a
// rebalance ago) reaches no hub until then: it sends again after its
// silence (uplink's ResendAfter), nothing is lost.
type Partition interface {
	// Owns reports whether this hub applies totem's operations; safe
	// for concurrent use, and cheap: it is asked per message.
	Owns(totem string) bool
	// Rebalance takes or gives back this hub's share, every
	// rebalanceEvery; on an error the hub owns nothing until the next.
	Rebalance(ctx context.Context) error
	// Held says what the hub holds, for the log.
	Held() []int
	// Totems lists the totems the fleet knows, in any order: ids or
	// broker usernames (a totem's second username counts as the
	// totem), repeats allowed.
	Totems(ctx context.Context) ([]string, error)
}

// rebalanceEvery is how often the hub asks for its share again.
const rebalanceEvery = time.Second

// partition returns the hub's Partition, nil when it takes every
// operation: none set, or an embedded broker (the only hub).
func (h *Hub) partition() Partition {
	if h.o.Local != nil {
		return nil
	}
	return h.o.Partition
}

// opSubscription is the operations' filter on an external broker when
// the hubs share them (partitioned, each subscribes per totem: syncOps).
func opSubscription(*Options) string {
	return protocol.SharedOpFilter
}

// opBatch is how many filters one SUBSCRIBE or UNSUBSCRIBE carries: about
// 40 bytes each (mosquitto's max_packet_size in deploy/ is 256 KiB, and
// a packet's filters are checked and added one by one).
const opBatch = 500

// opSubs are a partitioned hub's per-totem operation subscriptions.
type opSubs struct {
	mu    sync.Mutex      // one syncOps at a time
	known []string        // the fleet's totems at the last read (Totems)
	have  map[string]bool // totems subscribed on this connection
}

// setKnown keeps the fleet's totems the hub subscribes among, as totem
// ids, once each.
func (h *Hub) setKnown(names []string) {
	seen := make(map[string]bool, len(names))
	known := make([]string, 0, len(names))
	for _, n := range names {
		id, ok := protocol.UsernameTotem(n)
		if ok && !seen[id] {
			seen[id] = true
			known = append(known, id)
		}
	}
	h.ops.mu.Lock()
	h.ops.known = known
	h.ops.mu.Unlock()
}

// syncOps subscribes the operations of the known totems the hub owns and
// unsubscribes the others' (fresh: on a new connection, where nothing is
// subscribed), opBatch filters a packet. A filter the broker refuses,
// or a packet not acknowledged, is tried again at the next call. It
// returns how many totems are subscribed.
func (h *Hub) syncOps(ctx context.Context, cm *autopaho.ConnectionManager, p Partition, fresh bool) (int, error) {
	h.ops.mu.Lock()
	defer h.ops.mu.Unlock()
	if fresh || h.ops.have == nil {
		h.ops.have = make(map[string]bool)
	}
	have := h.ops.have
	want := make(map[string]bool, len(have))
	var sub, unsub []string
	for _, t := range h.ops.known {
		if p.Owns(t) {
			want[t] = true
			if !have[t] {
				sub = append(sub, t)
			}
		}
	}
	for t := range have {
		if !want[t] {
			unsub = append(unsub, t)
		}
	}
	var errs []error
	for b := range slices.Chunk(sub, opBatch) {
		s := &paho.Subscribe{Subscriptions: make([]paho.SubscribeOptions, len(b))}
		for i, t := range b {
			s.Subscriptions[i] = paho.SubscribeOptions{Topic: protocol.Topic(t, protocol.LeafOp), QoS: 1}
		}
		sa, err := cm.Subscribe(ctx, s)
		if sa == nil { // not acknowledged
			errs = append(errs, err)
			break
		}
		refused := 0
		for i, t := range b {
			if i < len(sa.Reasons) && sa.Reasons[i] < 0x80 {
				have[t] = true
			} else {
				refused++
			}
		}
		if refused > 0 {
			errs = append(errs, fmt.Errorf("hub: the broker refused %d totems' operation subscriptions", refused))
		}
	}
	for b := range slices.Chunk(unsub, opBatch) {
		u := &paho.Unsubscribe{Topics: make([]string, len(b))}
		for i, t := range b {
			u.Topics[i] = protocol.Topic(t, protocol.LeafOp)
		}
		if _, err := cm.Unsubscribe(ctx, u); err != nil {
			errs = append(errs, err) // still subscribed: foreign drops them meanwhile
			break
		}
		for _, t := range b {
			delete(have, t)
		}
	}
	return len(have), errors.Join(errs...)
}

// foreign reports (and counts) an operation of a totem another hub owns.
func (h *Hub) foreign(totem string) bool {
	p := h.partition()
	if p == nil || p.Owns(totem) {
		return false
	}
	h.stats.Foreign.Add(1)
	return true
}

// notOwner reports whether another hub owns totem: its owner alone sends
// a totem coming online its policy and signed technician set (retained
// both), which every hub sent before, each signing its own copy.
func (h *Hub) notOwner(totem string) bool {
	p := h.partition()
	return p != nil && !p.Owns(totem)
}

// rebalance keeps the hub's share up to date until ctx is done; the
// first Rebalance is the caller's (before the subscription).
func (h *Hub) rebalance(ctx context.Context, p Partition) {
	n := len(p.Held())
	clock.Every(ctx, rebalanceEvery, func() bool {
		h.rebalanceOnce(ctx, p, &n)
		return false
	})
}

// rebalanceOnce asks for the hub's share and the fleet's totems once,
// logging a change of its size (n), and brings the operation
// subscriptions up to date on a connection whose first subscription is
// done (else that one does: subscribe).
func (h *Hub) rebalanceOnce(ctx context.Context, p Partition, n *int) {
	if err := p.Rebalance(ctx); err != nil && ctx.Err() == nil {
		h.limited(slog.LevelError, "partition", "partition: no share of the totems", "err", err)
	}
	if held := len(p.Held()); held != *n {
		*n = held
		h.log.Info("partition", "buckets", held)
	}
	if names, err := p.Totems(ctx); err != nil {
		if ctx.Err() == nil { // the last list stays
			h.limited(slog.LevelError, "partition_totems", "partition: the fleet's totems unread", "err", err)
		}
	} else {
		h.setKnown(names)
	}
	h.mu.Lock()
	cm := h.cm
	h.mu.Unlock()
	if cm == nil || !h.subscribed.Load() {
		return
	}
	if _, err := h.syncOps(ctx, cm, p, false); err != nil && ctx.Err() == nil {
		h.limited(slog.LevelWarn, "partition_subscribe", "partition: operation subscriptions", "err", err)
	}
}
