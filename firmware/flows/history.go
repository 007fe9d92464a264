package flows

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/hal"
)

// History is Storico, self-service: PIN, then HistoryVia.
func History(ctx context.Context, dk *Desk, card hal.Card, info hal.CardInfo) error {
	if err := dk.Reachable(ctx, cms.KindHistory); err != nil {
		return err
	}
	if err := dk.pin(ctx, card); err != nil {
		return err
	}
	return HistoryVia(ctx, dk, info, &Via{})
}

// HistoryVia is Storico for the citizen identified by v: v's steps, the
// scope, the CMS's answer shown one card per page and printed on request.
func HistoryVia(ctx context.Context, dk *Desk, info hal.CardInfo, v *Via) error {
	if err := dk.Reachable(ctx, cms.KindHistory); err != nil {
		return err
	}
	scope := cms.HistoryAll
	err := steps(append(slices.Clip(v.steps), func() error {
		k, err := dk.choose(ctx, "history_scope")
		if scope = cms.HistoryAll; k == '2' {
			scope = cms.HistoryCard
		}
		return err
	})...)
	if err != nil {
		return err
	}
	dk.logOp(v, cms.KindHistory)
	payload, err := json.Marshal(cms.HistoryRequest{Card: CardRef(info), Attendance: v.attendance(), Scope: scope})
	if err != nil {
		return err
	}
	e, shown, err := dk.submitShown(ctx, cms.KindHistory, payload)
	if shown || err != nil {
		return err
	}
	var res cms.HistoryResult
	if ok, err := decode(dk, e, &res, nil, "history result"); !ok {
		return fmt.Errorf("firmware: history result: %w", err)
	}
	if len(res.Cards) == 0 {
		dk.show("history_none")
		if _, err := dk.key(ctx, "history_none", func() { dk.show("history_none") }); err != nil {
			return err
		}
		return ErrBack
	}
	return dk.historyPages(ctx, dk.historyScreen(res), func() error {
		return dk.finishKind(ctx, e, cms.KindHistory, info, append(dk.t.Frame().History(res, dk.title), v.lines(dk.t.Frame())...))
	})
}

// historyScreen is the Storico as the panel shows it: each card (state,
// masked serial, expiry) and under it its operations, date and title,
// dates as on the receipt (issue 17: the cards alone were shown).
func (dk *Desk) historyScreen(res cms.HistoryResult) []string {
	var lines []string
	for _, c := range res.Cards {
		// Four lines a card, two an operation: each on pages of its own.
		ops := dk.lang.Text("h_events")
		if len(c.Events) == 0 {
			ops = dk.lang.Text("h_no_events")
		}
		lines = append(lines, fmt.Sprintf(dk.lang.Text("h_card"), dk.lang.Text("state_"+string(c.State))),
			"N. "+layout.MaskSerial(c.Serial), fmt.Sprintf(dk.lang.Text("h_expiry"), layout.DateIT(c.Expiry)), ops)
		for _, ev := range c.Events {
			date := dk.t.Frame().In(ev.At).Format("02/01/2006")
			w := append(hal.Wrap(date+" "+dk.title(ev.Kind), 20), "")
			if len(w) > 3 {
				w = []string{date, fit20(dk.title(ev.Kind))}
			}
			lines = append(lines, w[:2]...)
		}
	}
	return lines
}

// historyPages shows lines two a page under "Storico p/n 1=Stampa": #
// forward (from the last page back to the menu), * back (from the first
// to the menu), 1 prints (print), D cancels.
func (dk *Desk) historyPages(ctx context.Context, lines []string, print func() error) error {
	n := pageCount(lines, 2)
	for p := 0; ; {
		name := "history_page"
		if p == n-1 {
			name = "history_last"
		}
		where := fmt.Sprintf("%d/%d", p+1, n)
		if w := dk.lang.Text("h_title") + " " + where; len(w) <= 11 {
			where = w
		}
		k, err := dk.Ask(ctx, name, append([]any{where}, pageRows(lines, 2, p)...)...)
		if err != nil {
			return err
		}
		if k == '1' {
			return print()
		}
		if past, err := dk.turn(k, &p, n); past || err != nil {
			return cmp.Or(err, ErrBack)
		}
	}
}
