package hub

import (
	"context"
	"slices"
	"sync"
)

// fair is the worker's queue of decoded operations, one FIFO per totem,
// served in turn, bounded: a pusher waits for room when it is full, and
// those waiting are let in in the order they came, by take itself, before
// any newcomer: with an in-process broker every totem pushes from its
// own connection, and a totem whose push just succeeded would otherwise
// push its next operation ahead of those that had waited, for as long as
// it had more (some totems starved for seconds, then sent everything
// again after their silence).
type fair struct {
	ready chan struct{} // an operation was added

	mu      sync.Mutex
	by      map[string][]pending
	ring    []string // totems with operations waiting, in turn order
	next    int      // whose turn it is
	n       int      // operations waiting
	max     int
	waiters []*waiter // pushers waiting for room, in the order they came
}

// waiter is a push waiting for room: take adds p and closes in.
type waiter struct {
	p  pending
	in chan struct{}
}

func newFair(max int) *fair {
	return &fair{by: make(map[string][]pending), max: max, ready: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (f *fair) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// add queues p. Under f.mu.
func (f *fair) add(p pending) {
	t := p.op.Totem
	if len(f.by[t]) == 0 {
		f.ring = append(f.ring, t)
	}
	f.by[t] = append(f.by[t], p)
	f.n++
}

// push adds p, waiting for room behind those already waiting; queued is
// false if ctx ended first, waited says whether it had to wait.
func (f *fair) push(ctx context.Context, p pending) (queued, waited bool) {
	f.mu.Lock()
	if f.n < f.max && len(f.waiters) == 0 {
		f.add(p)
		f.mu.Unlock()
		signal(f.ready)
		return true, false
	}
	w := &waiter{p: p, in: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	select {
	case <-w.in:
		return true, true
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.Index(f.waiters, w); i >= 0 {
		f.waiters = slices.Delete(f.waiters, i, i+1)
		return false, true
	}
	return true, true // let in meanwhile
}

// take appends up to max operations to batch, quantum per totem per turn,
// continuing where the previous batch stopped, then lets in those waiting
// for the room it made, in order.
func (f *fair) take(batch []pending, max int) []pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	for max > 0 && f.n > 0 {
		if f.next >= len(f.ring) {
			f.next = 0
		}
		t := f.ring[f.next]
		ops := f.by[t]
		k := min(quantum, max, len(ops))
		batch = append(batch, ops[:k]...)
		max -= k
		f.n -= k
		if k == len(ops) {
			delete(f.by, t)
			f.ring = append(f.ring[:f.next], f.ring[f.next+1:]...)
			continue // the next totem moved into this turn
		}
		f.by[t] = ops[k:]
		f.next++
	}
	k := 0
	for ; k < len(f.waiters) && f.n < f.max; k++ {
		f.add(f.waiters[k].p)
		close(f.waiters[k].in)
	}
	f.waiters = slices.Delete(f.waiters, 0, k)
	return batch
}
