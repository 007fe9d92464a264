package firmware

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

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
	e, err := a.submit(ctx, cms.KindHistory, payload)
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
			a.show("history_card", fmt.Sprintf("%d/%d %s", i+1, len(res.Cards), a.o.Lang.Text("state_"+string(c.State))),
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
			return a.finishKind(ctx, e, cms.KindHistory, info, append(historyLines(res), v.lines()...))
		case hal.KeyCancel:
			a.show("cancelled")
			return errCancel
		}
	}
}
