package clock

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

var _ Clock = System{}

// bound is how long a test waits for what must happen: a failure bound,
// never a measured duration.
const bound = 10 * time.Second

// calls returns an fn that counts its calls on a channel and reports done
// at the call numbered doneAt (0: never).
func calls(doneAt int) (func() bool, <-chan int) {
	ch := make(chan int, 100)
	n := 0
	return func() bool {
		n++
		select {
		case ch <- n:
		default:
		}
		return n == doneAt
	}, ch
}

func await(t *testing.T, ch <-chan int, want int) {
	t.Helper()
	select {
	case n := <-ch:
		if n != want {
			t.Fatalf("call %d, want %d", n, want)
		}
	case <-time.After(bound):
		t.Fatalf("no call %d within %v", want, bound)
	}
}

func TestEveryCallsOnEachTickUntilCancelled(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(context.Context, time.Duration, func() bool) bool
	}{{"Every", Every}, {"NowAndEvery", NowAndEvery}, {"EveryOrWake, no wake", func(ctx context.Context, d time.Duration, fn func() bool) bool {
		return EveryOrWake(ctx, d, nil, fn)
	}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			fn, ch := calls(0)
			ended := make(chan bool)
			go func() { ended <- tc.run(ctx, time.Millisecond, fn) }()
			for i := 1; i <= 3; i++ {
				await(t, ch, i)
			}
			cancel()
			select {
			case byFn := <-ended:
				if byFn {
					t.Fatal("reported ended by fn, ended by ctx")
				}
			case <-time.After(bound):
				t.Fatal("not ended by the cancelled context")
			}
		})
	}
}

// With the first tick an hour away, only the first-run variant calls fn,
// once, even on a context already done; Every never does.
func TestFirstCall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fn, ch := calls(0)
	if Every(ctx, time.Hour, fn) || len(ch) != 0 {
		t.Fatalf("Every on a done context: %d calls", len(ch))
	}
	if NowAndEvery(ctx, time.Hour, fn) {
		t.Fatal("NowAndEvery reported ended by fn")
	}
	if n := len(ch); n != 1 {
		t.Fatalf("NowAndEvery on a done context: %d calls, want 1", n)
	}
}

func TestDoneEndsTheLoop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		run    func(context.Context, time.Duration, func() bool) bool
		doneAt int
	}{{"Every", Every, 3}, {"NowAndEvery", NowAndEvery, 3}, {"NowAndEvery at once", NowAndEvery, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			fn, ch := calls(tc.doneAt)
			d := time.Millisecond
			if tc.doneAt == 1 {
				d = time.Hour // done at the first call: no tick needed
			}
			if !tc.run(context.Background(), d, fn) {
				t.Fatal("reported ended by ctx, ended by fn")
			}
			if n := len(ch); n != tc.doneAt {
				t.Fatalf("%d calls, want %d", n, tc.doneAt)
			}
		})
	}
}

// With the first tick an hour away, each wake makes a call, fn's done
// ends the loop, and a cancelled context too.
func TestEveryOrWake(t *testing.T) {
	wake := make(chan struct{}, 1)
	fn, ch := calls(3)
	ended := make(chan bool)
	go func() { ended <- EveryOrWake(context.Background(), time.Hour, wake, fn) }()
	for i := 1; i <= 3; i++ {
		wake <- struct{}{}
		await(t, ch, i)
	}
	select {
	case byFn := <-ended:
		if !byFn {
			t.Fatal("reported ended by ctx, ended by fn")
		}
	case <-time.After(bound):
		t.Fatal("not ended by fn's done")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if EveryOrWake(ctx, time.Hour, wake, fn) {
		t.Fatal("reported ended by fn on a done context")
	}
}

func TestGoStopWaitsForTheLoop(t *testing.T) {
	var returned atomic.Bool
	started := make(chan struct{})
	stop := Go(context.Background(), func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		returned.Store(true)
	})
	<-started
	stop()
	if !returned.Load() {
		t.Fatal("stop returned before the loop")
	}
	stop() // again: nothing more to do, and no block
}

func TestGoEndsWithItsParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stop := Go(parent, func(ctx context.Context) {
		<-ctx.Done()
		close(done)
	})
	defer stop()
	cancel()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatal("the loop outlived its parent context")
	}
}
