package haltest

import (
	"context"
	"testing"
	"time"
)

// Bound is how long Until waits when ctx has no deadline.
const Bound = 10 * time.Second

// Until waits until cond holds and fails t, saying that what never
// happened, if ctx ends or its deadline (Bound when it has none) passes
// first. It looks at cond every few milliseconds: for a state with no
// event to wait on (an outbox entry answered, a connection up, a
// counter). Where there is an event (a screen shown, a receipt printed,
// a channel), wait on it instead. Call it from the test's goroutine.
func Until(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, Bound)
		defer cancel()
	}
	start := time.Now()
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 20*time.Millisecond) {
		tick := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			tick.Stop()
			if cond() {
				return
			}
			t.Fatalf("%s: never happened (waited %v: %v)", what, time.Since(start).Round(time.Millisecond), context.Cause(ctx))
			return
		case <-tick.C:
		}
	}
}
