package haltest_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
)

// fatal records Fatalf instead of stopping the test.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper()                           {}
func (f *fatal) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestUntil(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	haltest.Until(t, context.Background(), "three", func() bool { return n.Load() == 3 })

	// A condition that never holds fails the test, naming what, once ctx
	// ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	f := &fatal{TB: t}
	haltest.Until(f, ctx, "the impossible", func() bool { return false })
	if !strings.Contains(f.msg, "the impossible: never happened") {
		t.Fatalf("failure %q", f.msg)
	}
}

func TestClockArmedAndStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := haltest.NewClock(time.Unix(0, 0))
	if c.Advance(time.Second) != 0 || c.Armed() != 0 || c.Pending() != 0 {
		t.Fatal("an idle clock fired or armed something")
	}
	// A loop on the clock: each wait armed after the one before fired.
	fired := make(chan time.Time, 10)
	go func() {
		for range 3 {
			fired <- <-c.After(time.Second)
		}
	}()
	if err := c.WaitArmed(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c.Step(t, ctx, time.Second) // returns once the loop waits again
		if got := len(fired); got != i+1 || c.Armed() != i+2 || c.Pending() != 1 {
			t.Fatalf("step %d: %d fired, %d armed, %d pending", i, got, c.Armed(), c.Pending())
		}
	}
	if c.Advance(500*time.Millisecond) != 0 || c.Advance(500*time.Millisecond) != 1 {
		t.Fatal("the last wait did not fire once due")
	}
	// Nothing waits any more: WaitArmed ends with ctx.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if err := c.WaitArmed(short, c.Armed()); err == nil {
		t.Fatal("WaitArmed returned with nothing armed")
	}
}
