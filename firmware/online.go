package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// The operations that need the CMS's answer while the citizen is there
// (history, PIN/PUK reprint), the refusals, and the paging of long texts.

// onlineTTL is the expiry of an operation that needs an answer: the
// citizen waits at the totem for it, so an operation the hub has not
// received by then is worth nothing. The outbox quarantines it unsent
// and the hub refuses it if it arrives later (cms.CodeExpired).
const onlineTTL = 60 * time.Second

var (
	errUnavailable = errors.New("firmware: online service unavailable")
	errNoAnswer    = errors.New("firmware: no answer in time")
)

// reachable reports whether the hub can be asked now (nil Online: assume
// so). When it cannot, the citizen is told at once and the session ends:
// nothing was queued or charged.
func (a *App) reachable(kind string) bool {
	if a.o.Online == nil || a.o.Online() {
		return true
	}
	a.log.Info("online op refused", "kind", kind, "reason", "offline")
	a.show("unavailable")
	return false
}

// online runs an operation that needs the CMS's answer. Offline, it says
// so and queues nothing (errUnavailable). Online, it makes the operation
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
	if !a.reachable(kind) {
		return outbox.Entry{}, errUnavailable
	}
	a.show("asking")
	now := time.Now()
	expires := now.Add(onlineTTL)
	e, ch, done, err := a.enqueue(kind, payload, now, expires)
	if err != nil {
		return e, err
	}
	defer done()
	timer := time.NewTimer(a.o.ResultWait)
	defer timer.Stop()
	late := false
	giveUp := func(why string) (outbox.Entry, error) {
		a.log.Info("online op unanswered", "op_id", e.ID, "kind", kind, "reason", why)
		a.show("late_gone")
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
			if a.noCard { // a card in now waits for the answer
				a.cardEvent(ev)
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
			a.show("late")
			timer.Reset(time.Until(expires) + a.o.ResultWait)
		case <-a.tick:
			a.alive()
		}
	}
}

// rejected reports whether the CMS refused the (final) entry e.
func rejected(e outbox.Entry) bool {
	return e.Result != nil && e.Result.Processing.Status == protocol.ProcessingRejected
}

// showRejection pages the CMS's reason for refusing e; it is Italian and
// meant for the citizen.
func (a *App) showRejection(ctx context.Context, e outbox.Entry) error {
	msg := "Rivolgersi allo sportello."
	if len(e.Result.Processing.Errors) > 0 {
		msg = e.Result.Processing.Errors[0].Message
	}
	a.log.Info("online op rejected", "op_id", e.ID, "kind", e.Kind)
	return a.pages(ctx, hal.Wrap(a.o.Lang.text("rejected_prefix")+msg, 20))
}

// pages shows lines three at a time: # forward, * back; # on the last
// page and * on the first return errBack (to the menu), D cancels.
func (a *App) pages(ctx context.Context, lines []string) error {
	n := max(1, (len(lines)+2)/3)
	row := func(i int) string {
		if i < len(lines) {
			return lines[i]
		}
		return ""
	}
	for p := 0; ; {
		name := "page"
		if p == n-1 {
			name = "page_last"
		}
		draw := func() { a.show(name, row(3*p), row(3*p+1), row(3*p+2)) }
		draw()
		k, err := a.key(ctx, name, draw)
		if err != nil {
			return err
		}
		switch k {
		case hal.KeyOK:
			if p == n-1 {
				return errBack
			}
			p++
		case hal.KeyBack:
			if p == 0 {
				return errBack
			}
			p--
		case hal.KeyCancel:
			a.show("cancelled")
			return errCancel
		}
	}
}

// menuPages are the menu's pages in order; session shows the first.
var menuPages = []string{"menu", "menu_2", "menu_3", "menu_4"}

// more shows the menu's pages after the first: # turns forward (from the
// last back to the first), * back; a function key runs its function.
func (a *App) more(ctx context.Context, card hal.Card, info hal.CardInfo) error {
	for p := 1; ; {
		name := menuPages[p]
		draw := func() { a.show(name) }
		draw()
		k, err := a.key(ctx, name, draw)
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
			return a.dispatch(ctx, k, card, info)
		}
	}
}

// dispatch runs the function of menu key k, from any page of the menu.
func (a *App) dispatch(ctx context.Context, k hal.Key, card hal.Card, info hal.CardInfo) error {
	switch k {
	case hal.KeyOK:
		return a.more(ctx, card, info)
	case '0':
		return a.other(ctx, info)
	case '1':
		return a.consent(ctx, card, info)
	case '2':
		return a.readerRequest(ctx, info)
	case '3':
		return a.changePIN(ctx, card, info)
	case '4':
		return a.history(ctx, card, info)
	case '5':
		return a.reprint(ctx, info)
	case '6':
		return a.unblockPIN(ctx, card, info)
	case '7':
		return a.revokeSelf(ctx, &info)
	case '8':
		return a.forms(ctx)
	case '9':
		return a.guide(ctx)
	case hal.KeyBack:
		return errBack
	}
	a.show("cancelled")
	return errCancel
}

// history is Storico, self-service: PIN, then historyVia.
func (a *App) history(ctx context.Context, card hal.Card, info hal.CardInfo) error {
	if !a.reachable(cms.KindHistory) {
		return errUnavailable
	}
	if err := a.pin(ctx, card); err != nil {
		return err
	}
	return a.historyVia(ctx, info, &via{})
}

// historyVia is Storico for the citizen identified by v: v's steps, the
// scope, the CMS's answer shown one card per page and printed on request.
func (a *App) historyVia(ctx context.Context, info hal.CardInfo, v *via) error {
	if !a.reachable(cms.KindHistory) {
		return errUnavailable
	}
	scope := cms.HistoryAll
	err := steps(append(slices.Clip(v.steps), func() error {
		k, err := a.choose(ctx, "history_scope")
		if scope = cms.HistoryAll; k == '2' {
			scope = cms.HistoryCard
		}
		return err
	})...)
	if err != nil {
		return err
	}
	a.logOp(v, cms.KindHistory)
	payload, err := json.Marshal(cms.HistoryRequest{Card: cardRef(info), Channel: v.channel(), Operator: v.op, Scope: scope})
	if err != nil {
		return err
	}
	e, err := a.online(ctx, cms.KindHistory, payload)
	if err != nil {
		return err
	}
	if rejected(e) {
		return a.showRejection(ctx, e)
	}
	var res cms.HistoryResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil {
		a.log.Error("history result", "op_id", e.ID, "err", err)
		a.show("unavailable")
		return fmt.Errorf("firmware: history result: %w", err)
	}
	if len(res.Cards) == 0 {
		a.show("history_none")
		if _, err := a.key(ctx, "history_none", func() { a.show("history_none") }); err != nil {
			return err
		}
		return errBack
	}
	for i := 0; ; {
		c := res.Cards[i]
		draw := func() {
			a.show("history_card", fmt.Sprintf("%d/%d %s", i+1, len(res.Cards), a.o.Lang.text("state_"+string(c.State))),
				maskSerial(c.Serial), dateIT(c.Expiry))
		}
		draw()
		k, err := a.key(ctx, "history_card", draw)
		if err != nil {
			return err
		}
		switch k {
		case hal.KeyOK:
			i = min(i+1, len(res.Cards)-1)
		case hal.KeyBack:
			if i == 0 {
				return errBack
			}
			i--
		case '1':
			return a.finish(ctx, e, kindTitle(cms.KindHistory), info, append(historyLines(res), v.lines()...))
		case hal.KeyCancel:
			a.show("cancelled")
			return errCancel
		}
	}
}

// dateIT turns 2030-12-31 into 31/12/2030.
func dateIT(d string) string {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return d
	}
	return t.Format("02/01/2006")
}

var reprintKeys = map[hal.Key]string{
	'1': cms.ReprintForgotten, '2': cms.ReprintLost, '3': cms.ReprintNotReceived, '4': cms.ReprintBlocked,
}

// reprint is Ristampa PIN/PUK, self-service with the card in the reader:
// no PIN is asked (it may be what was forgotten); reprintVia.
func (a *App) reprint(ctx context.Context, info hal.CardInfo) error {
	return a.reprintVia(ctx, info, &via{})
}

// reprintVia is Ristampa PIN/PUK for the citizen identified by v: the
// reason, then v's steps (who asks, in person or by delegation, and their
// document), the CMS's answer, the receipt with the first halves.
func (a *App) reprintVia(ctx context.Context, info hal.CardInfo, v *via) error {
	if !a.reachable(cms.KindReprint) {
		return errUnavailable
	}
	var reason string
	err := steps(append([]func() error{func() error {
		k, err := a.choose(ctx, "reprint_reason")
		reason = reprintKeys[k]
		return err
	}}, v.steps...)...)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(cms.ReprintRequest{Card: cardRef(info), Channel: v.channel(), Operator: v.op,
		Delegate: v.p.deleg, Document: v.document(), Reason: reason})
	if err != nil {
		return err
	}
	a.logOp(v, cms.KindReprint)
	e, err := a.online(ctx, cms.KindReprint, payload)
	if err != nil {
		return err
	}
	if rejected(e) {
		return a.showRejection(ctx, e)
	}
	var res cms.ReprintResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil || res.PINFirstHalf == "" {
		a.log.Error("reprint result", "op_id", e.ID, "err", err)
		a.show("unavailable")
		return errors.New("firmware: reprint result without codes")
	}
	return a.finishSensitive(ctx, e, kindTitle(cms.KindReprint), info, append(reprintLines(reason, res), v.lines()...))
}

// other lists the requests the totem does not serve itself, each with
// what to do instead: suspension and reactivation no longer exist, a
// reissue needs an enabled counter and an operator, wrong personal data
// are reported and corrected at the sportello Scelta e Revoca.
func (a *App) other(ctx context.Context, info hal.CardInfo) error {
	draw := func() { a.show("menu_other") }
	draw()
	k, err := a.key(ctx, "menu_other", draw)
	if err != nil {
		return err
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
	case '3':
		return a.wrongData(ctx, info)
	case hal.KeyBack:
		return errBack
	default:
		a.show("cancelled")
		return errCancel
	}
	a.log.Info("refusal shown", "what", key)
	return a.pages(ctx, hal.Wrap(a.o.Lang.text(key), 20))
}
