package firmware

import (
	"context"
	"errors"

	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
)

// The services a citizen can use without a card, from the idle screen:
// Revoca (the card may be lost or stolen), Moduli and Guida. A card
// inserted meanwhile ends them and starts a session, except while an
// online answer is awaited: then the session starts after it.

var errCardIn = errors.New("firmware: a card came in")

// cardless serves a citizen without a card on the App: its menu and the
// wait after it.
type cardless struct{ a *App }

// cardless serves key k pressed on the idle screen. It reports whether a
// card is in the reader when it is done.
func (a *App) cardless(ctx context.Context, k hal.Key) bool {
	c := cardless{a}
	down := !a.health.readerOK()
	if down || !screens.Bound("idle", k) || k == hal.KeyBack || k == hal.KeyCancel {
		return false
	}
	a.walkIn = walkIn{on: true}
	defer func() { a.walkIn.on = false }()
	a.log.Info("cardless session started")
	err := c.menu(ctx, k)
	a.log.Info("cardless session ended", "reason", reason(err))
	switch {
	case errors.Is(err, errCardIn), ctx.Err() != nil, errors.Is(err, errIdle), errors.Is(err, errBack):
	default:
		c.linger(ctx) // the last screen says how it ended
	}
	if !a.walkIn.cardIn {
		a.endCitizen() // the next citizen starts in the totem's language
		a.Show(a.health.idleScreen())
		return false
	}
	// Keys typed for the service are not the session's.
	for {
		select {
		case <-a.keys:
		default:
			return true
		}
	}
}

// menu runs the function of k, or the menu of the functions that need no
// card for #; Back from a function returns to that menu.
func (c cardless) menu(ctx context.Context, k hal.Key) error {
	a := c.a
	for {
		if k == hal.KeyOK {
			draw := func() { a.Show("menu_nocard") }
			draw()
			var err error
			if k, err = a.Key(ctx, "menu_nocard", draw); err != nil {
				return err
			}
		}
		var err error
		switch k {
		case '7':
			err = flows.RevokeSelf(ctx, a.desk, nil)
		case '8':
			err = flows.Forms(ctx, a.desk)
		case '9':
			err = flows.Guide(ctx, a.desk)
		default: // * or D: back to the idle screen
			return errBack
		}
		if !errors.Is(err, errBack) {
			return err
		}
		k = hal.KeyOK
	}
}

// walkIn is set (on) while a citizen without a card is served; cardIn
// then records whether a card came in meanwhile.
type walkIn struct{ on, cardIn bool }

// event records a card event seen while serving a citizen without a
// card; it reports whether a card is in.
func (w *walkIn) event(ev hal.CardEvent) bool {
	switch ev.Kind {
	case hal.CardInserted:
		w.cardIn = true
	case hal.CardRemoved:
		w.cardIn = false
	}
	return w.cardIn
}

// linger leaves the last screen of a cardless session up until a key, a
// card or a quarter of the idle timeout.
func (c cardless) linger(ctx context.Context) {
	c.a.hold(ctx, c.a.timeouts.idle()/4, c.a.walkIn.event)
}
