package agent

import (
	"context"
	"sync"
	"time"
)

// Gate is the totem's idle signal, kept where the citizen's input comes
// in: totemd passes every card event and key press through Pass before
// the firmware sees it. Hold succeeds only with no card in the slot and
// no key pressed for a quiet period, and while held, Pass keeps input
// back: a session cannot start between the check and the restart, and no
// session is ever cut by an update. (It is kept outside the firmware, at
// the devices, so the session loop needs no change to be gated.)
type Gate struct {
	quiet time.Duration
	now   func() time.Time

	mu       sync.Mutex
	present  bool      // a card in the slot
	last     time.Time // last card event or key
	held     bool
	released chan struct{} // closed on release
}

// NewGate returns a Gate that calls the totem quiet after quiet without
// input (it should pass the firmware's session idle timeout, so a
// citizen thinking over a screen still counts as in session).
func NewGate(quiet time.Duration, now func() time.Time) *Gate {
	if now == nil {
		now = time.Now
	}
	return &Gate{quiet: quiet, now: now, last: now()}
}

// Pass records input (present: whether a card is in the slot after it)
// and returns once the totem is not held, or ctx is done.
func (g *Gate) Pass(ctx context.Context, present bool) error {
	g.mu.Lock()
	g.present, g.last = present, g.now()
	held, ch := g.held, g.released
	g.mu.Unlock()
	if !held {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Key records a key press, which leaves the slot as it was.
func (g *Gate) Key(ctx context.Context) error {
	g.mu.Lock()
	present := g.present
	g.mu.Unlock()
	return g.Pass(ctx, present)
}

// Hold is the Quiet the Agent waits on.
func (g *Gate) Hold() (func(), bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held || g.present || g.now().Sub(g.last) < g.quiet {
		return nil, false
	}
	g.held, g.released = true, make(chan struct{})
	ch := g.released
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.held = false
			close(ch)
			g.mu.Unlock()
		})
	}, true
}
