package outbox

import (
	"math"
	"sync"
	"sync/atomic"
)

// alarm is the quota alarm: the committer checks each commit's use against
// the threshold, and a goroutine of its own delivers the transitions to
// Options.OnAlarm, so that the callback may use the Outbox.
type alarm struct {
	bounded bool          // a quota is set: without one there is no alarm
	bits    atomic.Uint64 // math.Float64bits of the threshold in force (SetAlarmAt)
	on      atomic.Bool   // written by the committer only; Usage reads it
	notify  func(Usage)

	mu   sync.Mutex
	next *Usage        // latest transition not yet delivered
	wake chan struct{} // capacity 1: wakes the delivering goroutine
	end  chan struct{}
}

func newAlarm(at float64, bounded bool, notify func(Usage)) *alarm {
	a := &alarm{bounded: bounded, notify: notify, wake: make(chan struct{}, 1), end: make(chan struct{})}
	a.bits.Store(math.Float64bits(at))
	return a
}

// threshold is the fraction of a quota at which the alarm fires.
func (a *alarm) threshold() float64 { return math.Float64frombits(a.bits.Load()) }

// check records an alarm transition for the delivering goroutine. It is
// called by Open and then only by the committer.
func (a *alarm) check(u Usage) {
	if !a.bounded {
		return
	}
	at := a.threshold()
	on := u.Fraction >= at
	was := a.on.Load()
	if was && !on && u.Fraction >= at-0.05 {
		on = true // hysteresis: clear a little below the threshold
	}
	if on == was {
		return
	}
	a.on.Store(on)
	u.Alarm = on
	if a.notify == nil {
		return
	}
	a.mu.Lock()
	a.next = &u
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run calls notify for each transition, outside the committer. stop ends
// it.
func (a *alarm) run() {
	defer close(a.end)
	delivered := false
	for range a.wake {
		a.mu.Lock()
		u := a.next
		a.next = nil
		a.mu.Unlock()
		if u != nil && u.Alarm != delivered {
			delivered = u.Alarm
			a.notify(*u)
		}
	}
}

// stop ends run once it delivered what it was woken for.
func (a *alarm) stop() {
	close(a.wake)
	<-a.end
}
