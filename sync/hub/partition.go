package hub

import (
	"context"
	"log/slog"
	"time"

	"github.com/aslcns/totem/sync/protocol"
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
type Partition interface {
	// Owns reports whether this hub applies totem's operations; safe
	// for concurrent use, and cheap: it is asked per message.
	Owns(totem string) bool
	// Rebalance takes or gives back this hub's share, every
	// rebalanceEvery; on an error the hub owns nothing until the next.
	Rebalance(ctx context.Context) error
	// Held says what the hub holds, for the log.
	Held() []int
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

// opSubscription is the operations' filter on an external broker: shared
// by the hubs, or every hub's own when they are partitioned.
func opSubscription(o *Options) string {
	if o.Partition != nil {
		return opFilter
	}
	return protocol.SharedOpFilter
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
	t := time.NewTicker(rebalanceEvery)
	defer t.Stop()
	n := len(p.Held())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.rebalanceOnce(ctx, p, &n)
	}
}

// rebalanceOnce asks for the hub's share once, logging a change of its
// size (n).
func (h *Hub) rebalanceOnce(ctx context.Context, p Partition, n *int) {
	if err := p.Rebalance(ctx); err != nil && ctx.Err() == nil {
		h.limited(slog.LevelError, "partition", "partition: no share of the totems", "err", err)
	}
	if held := len(p.Held()); held != *n {
		*n = held
		h.log.Info("partition", "buckets", held)
	}
}
