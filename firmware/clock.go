package firmware

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/hal"
)

// Every wait of the App is on its one clock (Options.Clock): the idle
// timeouts, the result and print waits, the heartbeat, the pauses and the
// maintenance door. Tests advance a haltest.Clock instead of sleeping.

// timer is a wait on a clock that can be armed again, like time.Timer:
// select on C, Reset arms it for d from now (a tick not taken is dropped).
type timer struct {
	clock hal.Clock
	C     <-chan time.Time
}

// timer returns a timer on the App's clock firing after d.
func (a *App) timer(d time.Duration) *timer {
	return &timer{clock: a.clock, C: a.clock.After(d)}
}

// Reset arms t to fire d from now.
func (t *timer) Reset(d time.Duration) { t.C = t.clock.After(d) }

// idleWatch is the idle timeout of a wait at the panel, told before it
// ends the wait: warnAt without a key puts up "idle_warning", total ends
// the wait (errIdle). A key while the warning is up only dismisses it.
type idleWatch struct {
	*timer
	a             *App
	warnAt, total time.Duration
	warned        bool
}

// idleWatch arms the idle timeout of a wait starting now.
func (a *App) idleWatch(total, warnAt time.Duration) *idleWatch {
	return &idleWatch{timer: a.timer(warnAt), a: a, warnAt: warnAt, total: total}
}

// restart starts the wait over after a key.
func (w *idleWatch) restart() { w.Reset(w.warnAt) }

// dismiss takes a key pressed while the warning is up, if it is: redraw
// puts the wait's screen back and the wait starts over. It reports
// whether the warning was up (the key does nothing else then).
func (w *idleWatch) dismiss(redraw func()) bool {
	if !w.warned {
		return false
	}
	w.warned = false
	redraw()
	w.restart()
	return true
}

// fired takes the timer's tick: the warning, or errIdle when it was
// already up.
func (w *idleWatch) fired() error {
	if w.warned {
		return errIdle
	}
	w.warned = true
	w.a.Show("idle_warning")
	w.Reset(w.total - w.warnAt)
	return nil
}

// hold leaves the screen up until d passes on the App's clock, a key is
// pressed, or card, given each card event, says stop (nil: card events
// are left for whoever waits next).
func (a *App) hold(ctx context.Context, d time.Duration, card func(hal.CardEvent) (stop bool)) {
	t := a.clock.After(d)
	var cards <-chan hal.CardEvent
	if card != nil {
		cards = a.cards
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t:
			return
		case <-a.keys:
			return
		case ev := <-cards:
			if card(ev) {
				return
			}
		case <-a.tick:
			a.heart.alive()
		}
	}
}

// sleep waits d on clock, or until ctx is done.
func sleep(ctx context.Context, clock hal.Clock, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-clock.After(d):
	}
}

// ticker returns a loop that sends the clock's time on c every d until
// ctx is done, dropping a tick nobody took, like time.Ticker. The first
// tick is armed before ticker returns, and each next one before a tick
// is sent: from Run's start on, whoever moves a test's clock past d (or
// took a tick and moves it again) gets the next tick.
func ticker(clock hal.Clock, d time.Duration, c chan<- time.Time) (run func(ctx context.Context)) {
	next := clock.After(d)
	return func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case t := <-next:
				next = clock.After(d)
				select {
				case c <- t:
				default:
				}
			}
		}
	}
}

// heart is when the session loop last ran (unix ns), on the App's clock:
// App.Progress.
type heart struct {
	clock hal.Clock
	beat  atomic.Int64
}

// alive records that the loop ran; the loop's goroutine only.
func (h *heart) alive() { h.beat.Store(h.clock.Now().UnixNano()) }

// last is when the loop last ran.
func (h *heart) last() time.Time { return time.Unix(0, h.beat.Load()) }

// timeouts are the idle timeout and the result wait in force (ns):
// App.SetTimeouts changes them live.
type timeouts struct{ idleNS, waitNS atomic.Int64 }

func (t *timeouts) set(resultWait, idle time.Duration) {
	if resultWait > 0 {
		t.waitNS.Store(int64(resultWait))
	}
	if idle > 0 {
		t.idleNS.Store(int64(idle))
	}
}

func (t *timeouts) resultWait() time.Duration { return time.Duration(t.waitNS.Load()) }
func (t *timeouts) idle() time.Duration       { return time.Duration(t.idleNS.Load()) }
