package firmware

import (
	"context"
	"time"

	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
)

// The operations that need the CMS's answer while the citizen is there
// (history, PIN/PUK reprint), the refusals, and the paging of long texts.

// onlineTTL is the expiry of an operation that needs an answer: the
// citizen waits at the totem for it, so an operation the hub has not
// received by then is worth nothing. The outbox quarantines it unsent
// and the hub refuses it if it arrives later (cms.CodeExpired).
const onlineTTL = 60 * time.Second

var (
	errUnavailable = flows.ErrUnavailable
	errNoAnswer    = flows.ErrNoAnswer
)

// online runs an operation that needs the CMS's answer. Offline, it says
// so, queues nothing and goes back to the menu (errBack). Online, it makes the operation
// durable with a short expiry and waits for the final result.
//
// The wait has two stages. For ResultWait the citizen sees "please wait".
// Then the screen says honestly that the answer is late and that, if it
// comes while they wait, the receipt is printed — it goes through the
// durable print queue, so a printer fault does not lose it. The wait lasts
// until the operation's expiry (plus ResultWait for the answer's way
// back), or until the citizen gives up (D, *, or the card out). Then the
// screen says no answer came and to retry later or go to the counter
// (errNoAnswer), and a late answer is deliberately NOT printed: its
// receipt holds the first halves of PIN and PUK or the list of the
// holder's cards, and must not come out of a totem nobody stands at,
// for the next person to take. A late answer stays in the send log; a
// reprint the CMS did apply has sent the second halves to the holder's
// contact anyway, and the citizen can ask again (same codes).
//
// The returned entry is Done; rejected tells whether the CMS refused it.
func (a *App) online(ctx context.Context, kind string, payload []byte) (outbox.Entry, error) {
	if err := a.desk.Reachable(ctx, kind); err != nil {
		return outbox.Entry{}, err
	}
	a.Show("asking")
	now := a.clock.Now()
	expires := now.Add(onlineTTL)
	e, ch, done, err := a.enqueue(kind, payload, now, expires)
	if err != nil {
		return e, err
	}
	defer done()
	timer := a.timer(a.timeouts.resultWait())
	late := false
	giveUp := func(why string) (outbox.Entry, error) {
		a.log.Info("online op unanswered", "op_id", e.ID, "kind", kind, "reason", why)
		a.Show("late_gone")
		return e, errNoAnswer
	}
	for {
		select {
		case <-ctx.Done():
			return e, ctx.Err()
		case got := <-ch:
			if got.Done {
				return got, nil
			}
		case ev := <-a.cards:
			if a.walkIn.on { // a card in now waits for the answer
				a.walkIn.event(ev)
				continue
			}
			if ev.Kind == hal.CardRemoved {
				a.log.Info("online op unanswered", "op_id", e.ID, "kind", kind, "reason", "card_removed")
				return e, hal.ErrCardRemoved
			}
		case k := <-a.keys:
			if late && (k == hal.KeyCancel || k == hal.KeyBack) {
				return giveUp("citizen_left")
			}
		case <-timer.C:
			if late {
				return giveUp("expired")
			}
			late = true
			a.Show("late")
			timer.Reset(expires.Sub(a.clock.Now()) + a.timeouts.resultWait())
		case <-a.tick:
			a.heart.alive()
		}
	}
}

// menuPages are the menu's pages in order; session shows the first.
var menuPages = []string{"menu", "menu_2", "menu_3", "menu_4"}

// selfService is the menu of a citizen's session on the App, for the card
// in the slot and what it said.
type selfService struct {
	a    *App
	card hal.Card
	info hal.CardInfo
}

// more shows the menu's pages after the first: # turns forward (from the
// last back to the first), * back; a function key runs its function.
func (s selfService) more(ctx context.Context) error {
	for p := 1; ; {
		name := menuPages[p]
		k, err := s.a.desk.Ask(ctx, name)
		if err != nil {
			return err
		}
		switch k {
		case hal.KeyOK:
			if p++; p == len(menuPages) {
				return errBack // the first page again
			}
		case hal.KeyBack:
			if p--; p == 0 {
				return errBack
			}
		default:
			return s.dispatch(ctx, k)
		}
	}
}

// dispatch runs the function of menu key k, from any page of the menu.
func (s selfService) dispatch(ctx context.Context, k hal.Key) error {
	a := s.a
	if kind, ok := selfMenu[k]; ok {
		return kindSpecs[kind].self(a, ctx, s.card, s.info)
	}
	switch k {
	case hal.KeyOK:
		return s.more(ctx)
	case '0':
		return s.other(ctx)
	case '8':
		return flows.Forms(ctx, a.desk)
	case '9':
		return flows.Guide(ctx, a.desk)
	case hal.KeyBack:
		return errBack
	}
	a.Show("cancelled")
	return errCancel
}

// other lists the requests the totem does not serve itself, each with
// what to do instead: suspension and reactivation no longer exist, a
// reissue needs an enabled counter and an operator, wrong personal data
// are reported and corrected at the sportello Scelta e Revoca.
func (s selfService) other(ctx context.Context) error {
	a := s.a
	k, err := a.desk.Ask(ctx, "menu_other")
	if err != nil {
		return err
	}
	if kind, ok := otherMenu[k]; ok {
		return kindSpecs[kind].self(a, ctx, nil, s.info)
	}
	var key string
	switch k {
	case '1':
		key = "refuse_suspension"
	case '2':
		key = "refuse_reissue"
		if a.o.ReissueCounter {
			key = "reissue_counter"
		}
	case hal.KeyBack:
		return errBack
	default:
		a.Show("cancelled")
		return errCancel
	}
	a.log.Info("refusal shown", "what", key)
	return a.desk.Pages(ctx, hal.Wrap(a.lang.Text(key), 20))
}
