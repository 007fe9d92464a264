package firmware_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
)

// wedgeDisplay is a display whose Show blocks, once wedged, until
// released: a hung driver call on the session loop's goroutine.
type wedgeDisplay struct {
	hal.Display
	wedged  atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (d *wedgeDisplay) Show(lines []string) error {
	if d.wedged.Load() {
		select {
		case d.entered <- struct{}{}:
		default:
		}
		<-d.release
	}
	return d.Display.Show(lines)
}

// advances moves the App's clock a second at a time, each step's
// heartbeat sent (the ticker waits for the next), until Progress moves
// past since; the test fails naming what when ctx ends first.
func advances(t *testing.T, ctx context.Context, l *local, since time.Time, what string) {
	t.Helper()
	for !l.app.Progress().After(since) {
		if ctx.Err() != nil {
			t.Fatalf("%s: never happened", what)
		}
		l.clock.Step(t, ctx, time.Second)
	}
}

// Progress moves while the loop waits, idle or in a session, and stops
// while the loop is stuck in a call: what totemd's watchdog pings on.
func TestProgressProvesTheLoopRuns(t *testing.T) {
	panel := sim.NewPanel(20, 4)
	wd := &wedgeDisplay{Display: panel, entered: make(chan struct{}, 1), release: make(chan struct{})}
	l := startLocalOpts(t, localOpts{keypad: panel, display: wd, clock: haltest.NewClock(time.Now())})
	l.panel = panel    // the one the cleanup reads "Fuori servizio" on
	t.Cleanup(func() { // before startLocalOpts's cleanup stops the app
		if wd.wedged.Swap(false) {
			close(wd.release)
		}
	})
	ctx := ctxT(t)
	wait := func(substr string) {
		t.Helper()
		if _, err := panel.WaitFor(ctx, substr); err != nil {
			t.Fatal(err)
		}
	}
	wait("Inserire la tessera")

	// Idle: nothing happens, the heartbeat still records that it runs.
	advances(t, ctx, l, l.app.Progress(), "Progress moving while the loop is idle")
	// In a session, waiting for the citizen's choice.
	l.reader.Insert(testCard())
	wait("1 Consensi FSE")
	advances(t, ctx, l, l.app.Progress(), "Progress moving while the session waits for a key")

	// Wedged in Show: the loop is stuck, Progress must stand still.
	wd.wedged.Store(true)
	panel.Press('1')
	haltest.Recv(t, ctx, wd.entered, "the loop calling Show")
	stuck := l.app.Progress()
	for range 3 { // three heartbeats, each sent: the ticker waits for the next
		l.clock.Step(t, ctx, time.Second)
	}
	if p := l.app.Progress(); p.After(stuck) {
		t.Fatalf("Progress moved from %v to %v while the loop was stuck in Show", stuck, p)
	}
}
