// Package clock is the module's one time source for waits that tests
// drive (Clock, with the real one, System) and its one periodic loop
// (Every, NowAndEvery, EveryOrWake, Go): the layers that may not import
// hal (sync, cms) read time through it — hal.Clock has the same two
// methods, so a value of either is the other — and every "on each tick
// until the context ends" loop is written once.
package clock

import (
	"context"
	"time"
)

// Clock is the time source used for timeouts, debounce and backoff, so
// tests can drive it (hal/haltest.Clock moves only when told).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// System is the real clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (System) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Every calls fn every d, the first time d after the start, until ctx is
// done or fn reports done; it reports whether fn ended it. The calls
// follow a time.Ticker's ticks: a fn slower than d makes ticks drop, not
// pile up.
func Every(ctx context.Context, d time.Duration, fn func() (done bool)) bool {
	return every(ctx, d, false, nil, fn)
}

// NowAndEvery is Every with a first call at once — made even when ctx is
// already done — and the next ones on the ticks counted from the start.
func NowAndEvery(ctx context.Context, d time.Duration, fn func() (done bool)) bool {
	return every(ctx, d, true, nil, fn)
}

// EveryOrWake is Every with a call also on each receive from wake: the
// same work, sooner, when something made it likely due (the ticks keep
// their pace from the start).
func EveryOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}, fn func() (done bool)) bool {
	return every(ctx, d, false, wake, fn)
}

// every is the one loop of Every, NowAndEvery and EveryOrWake; a nil
// wake never wakes it.
func every(ctx context.Context, d time.Duration, now bool, wake <-chan struct{}, fn func() bool) bool {
	t := time.NewTicker(d)
	defer t.Stop()
	for first := now; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			case <-wake:
			}
		}
		if fn() {
			return true
		}
	}
}

// Go runs loop in a goroutine on a context derived from ctx. stop cancels
// that context and returns once loop has; calling it again does nothing
// more.
func Go(ctx context.Context, loop func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
