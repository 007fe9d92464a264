package uplink

import "sync"

// waiters are the requests waiting for the hub's answer, by id: a ledger
// or card-state question, a rotation. Each id gets one answer at most.
type waiters[T any] struct {
	mu sync.Mutex
	m  map[string]chan T
}

// add registers id and returns the channel its answer arrives on (capacity
// 1) and the function that forgets id, to defer.
func (w *waiters[T]) add(id string) (<-chan T, func()) {
	ch := make(chan T, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[string]chan T)
	}
	w.m[id] = ch
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.m, id)
		w.mu.Unlock()
	}
}

// answer hands v to the request waiting for id, if any.
func (w *waiters[T]) answer(id string, v T) {
	w.mu.Lock()
	ch := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ch != nil {
		ch <- v // capacity 1, one answer per id
	}
}

// signal wakes a loop: capacity 1, a notification while one is pending
// adds nothing.
type signal chan struct{}

// notify wakes the loop without waiting.
func (s signal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}
