// Package waiters keeps the callers waiting for an answer by id — a
// session for its operation's results, the uplink for a ledger or a
// rotation reply — and hands each answer to whoever waits for it without
// ever blocking the one that delivers it.
package waiters

import "sync"

// Set is the waiters by id. The zero value is ready to use.
type Set[T any] struct {
	mu sync.Mutex
	m  map[string]chan T
}

// Add registers id and returns the channel its answers arrive on
// (capacity 1: the caller may put in it an answer it found by itself) and
// the function that forgets id, to defer.
func (s *Set[T]) Add(id string) (chan T, func()) {
	ch := make(chan T, 1)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]chan T)
	}
	s.m[id] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.m, id)
		s.mu.Unlock()
	}
}

// AddChecked is Add for an answer that may have come before the
// registration: once id is registered, found is asked for it (an outbox
// read) and what it finds is put in the channel — unless a delivery got
// there first, which is kept: the caller never blocks on its own channel.
func (s *Set[T]) AddChecked(id string, found func() (T, bool)) (chan T, func()) {
	ch, done := s.Add(id)
	if v, ok := found(); ok {
		select {
		case ch <- v:
		default:
		}
	}
	return ch, done
}

// Deliver hands v to whoever waits for id, without waiting: one that has
// not taken the previous answer keeps that one. id stays registered for
// more answers.
func (s *Set[T]) Deliver(id string, v T) { s.send(id, v, false) }

// Answer hands v to whoever waits for id, and forgets id: an id gets one
// answer at most.
func (s *Set[T]) Answer(id string, v T) { s.send(id, v, true) }

func (s *Set[T]) send(id string, v T, forget bool) {
	s.mu.Lock()
	ch := s.m[id]
	if forget {
		delete(s.m, id)
	}
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- v:
		default:
		}
	}
}
