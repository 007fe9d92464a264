package broker

import (
	"sync"
	"sync/atomic"
)

// The credential events counted per user (issue 14: every one counted per
// totem for the metrics and the ops console). A fixed set: the metrics'
// event label never takes another value.
const (
	EventEnrolled = "enrolled" // an enrollment code exchanged for a secret
	EventRotated  = "rotated"  // a rotated secret confirmed by a login with it
	EventExpired  = "expired"  // the right secret refused past its expiry
	EventFailed   = "failed"   // a wrong secret (counted towards the lock)
	EventLocked   = "locked"   // the failure that locked the user
	EventUnlocked = "unlocked" // a lock lifted by ops
)

// CredentialEvents lists the events in the order they are shown.
var CredentialEvents = [...]string{EventEnrolled, EventRotated, EventExpired, EventFailed, EventLocked, EventUnlocked}

// eventCounts are the counts of one user, by CredentialEvents' index.
type eventCounts [len(CredentialEvents)]int64

// events counts credential events per registry user since the registry
// was opened (a counter that starts again at a restart, as Prometheus
// expects). Only users of the registry are counted, never a name a
// stranger tried, so the map is bounded by the registry.
type events struct {
	mu sync.Mutex
	m  map[string]*eventCounts
	on atomic.Pointer[func(username, event string)] // Registry.OnCredentialEvent
}

// OnCredentialEvent makes f hear every credential event of a registry user
// but EventFailed (the lock that failures lead to is heard): the hub's
// audit. f runs on the authenticating client's goroutine: it must hand the
// event off, never wait.
func (r *Registry) OnCredentialEvent(f func(username, event string)) { r.events.on.Store(&f) }

func (e *events) add(username, event string) {
	if f := e.on.Load(); f != nil && event != EventFailed {
		(*f)(username, event)
	}
	i := eventIndex(event)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]*eventCounts)
	}
	c := e.m[username]
	if c == nil {
		c = new(eventCounts)
		e.m[username] = c
	}
	c[i]++
}

// of returns username's counts by event, every event present (zero too:
// a series that appears only at its first event loses that event to
// rate()).
func (e *events) of(username string) map[string]int64 {
	e.mu.Lock()
	var c eventCounts
	if p := e.m[username]; p != nil {
		c = *p
	}
	e.mu.Unlock()
	out := make(map[string]int64, len(c))
	for i, name := range CredentialEvents {
		out[name] = c[i]
	}
	return out
}

func eventIndex(event string) int {
	for i, name := range CredentialEvents {
		if name == event {
			return i
		}
	}
	panic("broker: unknown credential event " + event)
}
