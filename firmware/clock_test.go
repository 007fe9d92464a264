package firmware

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
)

// armGate is a clock whose second After call (the ticker's next tick)
// waits until the test opens the gate, telling it on arming.
type armGate struct {
	*haltest.Clock
	calls   atomic.Int32
	arming  chan struct{}
	release chan struct{}
}

func (g *armGate) After(d time.Duration) <-chan time.Time {
	if g.calls.Add(1) == 2 {
		close(g.arming)
		<-g.release
	}
	return g.Clock.After(d)
}

// The ticker arms its first tick before it runs and its next before it
// sends one: whoever took a tick may move a test's clock again and be
// sure to get the next.
func TestTickerArmsBeforeItSends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	clock := &armGate{Clock: haltest.NewClock(time.Unix(0, 0)), arming: make(chan struct{}), release: make(chan struct{})}
	c := make(chan time.Time, 1)
	done := make(chan struct{})
	run := ticker(clock, time.Second, c)
	if clock.Armed() != 1 {
		t.Fatal("the first tick is not armed once ticker returns")
	}
	go func() { run(ctx); close(done) }()
	defer func() { cancel(); close(clock.release); <-done }()
	clock.Advance(time.Second)
	select {
	case <-clock.arming: // the next tick is being armed: this one must not be sent yet
		if len(c) != 0 {
			t.Fatal("the tick was sent before the next one was armed")
		}
	case <-ctx.Done():
		t.Fatal("the next tick was never armed")
	}
}
