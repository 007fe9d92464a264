package haltest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
)

var _ hal.Clock = (*Clock)(nil)

// Clock is a hal.Clock that moves only when told (Advance): tests
// advance it instead of sleeping. The channels After returns fire when the
// clock reaches their time. Safe for concurrent use.
//
// A test that advances the clock learns that the goroutines it woke are
// waiting again from Armed and WaitArmed: a loop that wakes on the clock
// arms its next wait when it is done with this one.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
	armed   int           // After calls so far
	changed chan struct{} // closed (and replaced) by every After call
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the time once the clock has moved
// d ahead (at once for d <= 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed++
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, clockWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock d ahead and fires what falls due; it returns
// how many waits it fired.
func (c *Clock) Advance(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	now, keep, fired := c.now, c.waiters[:0], 0
	for _, w := range c.waiters {
		if !w.at.After(now) {
			w.ch <- now
			fired++
		} else {
			keep = append(keep, w)
		}
	}
	clear(c.waiters[len(keep):])
	c.waiters = keep
	return fired
}

// Armed returns how many waits (After calls) the clock has been asked for
// so far, fired or not.
func (c *Clock) Armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// Pending returns how many waits are armed and not fired yet.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// WaitArmed waits until the clock has been asked for more than n waits
// (n from Armed before the Advance that woke someone), or ctx is done; it
// returns ctx's error then.
func (c *Clock) WaitArmed(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if c.armed > n {
			c.mu.Unlock()
			return nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Step moves the clock d ahead and waits until whoever it woke is
// waiting on the clock again (a wait armed after the move): a loop on
// the clock has then taken what fell due. When nothing fell due it
// returns at once. It fails t when ctx ends first.
func (c *Clock) Step(t testing.TB, ctx context.Context, d time.Duration) {
	t.Helper()
	n := c.Armed()
	if c.Advance(d) == 0 {
		return
	}
	if err := c.WaitArmed(ctx, n); err != nil {
		t.Fatalf("haltest: nothing waited on the clock again after it moved %v: %v", d, err)
	}
}
