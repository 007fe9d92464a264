package firmware

import (
	"sync"

	"github.com/aslcns/totem/sync/outbox"
)

// waiters are the sessions (and console commands) waiting for the results
// of an operation, by op id: the uplink's results reach them through
// App.Result.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan outbox.Entry
}

// listen registers for the results of op id (deliver sends them); stop
// ends it.
func (w *waiters) listen(id string) (results chan outbox.Entry, stop func()) {
	c := make(chan outbox.Entry, 1)
	w.mu.Lock()
	w.m[id] = c
	w.mu.Unlock()
	return c, func() {
		w.mu.Lock()
		delete(w.m, id)
		w.mu.Unlock()
	}
}

// deliver hands e to whoever listens for it, without waiting: a listener
// that has not taken the previous result keeps that one.
func (w *waiters) deliver(e outbox.Entry) {
	w.mu.Lock()
	ch := w.m[e.ID]
	w.mu.Unlock()
	if ch != nil {
		select {
		case ch <- e:
		default:
		}
	}
}
