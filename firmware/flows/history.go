package flows

import (
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
	payload, err := json.Marshal(cms.HistoryRequest{Card: CardRef(info), Channel: v.channel(), Operator: v.op, Scope: scope,
		Document: v.document()})
	if err != nil {
		return err
	}
	e, err := dk.submit(ctx, cms.KindHistory, payload)
	if err != nil {
		return err
	}
	if rejected(e) {
		return dk.showRejection(ctx, e)
	}
	var res cms.HistoryResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil {
		dk.log.Error("history result", "op_id", e.ID, "err", err)
		dk.show("unavailable")
		return fmt.Errorf("firmware: history result: %w", err)
	}
	if len(res.Cards) == 0 {
		dk.show("history_none")
		if _, err := dk.key(ctx, "history_none", func() { dk.show("history_none") }); err != nil {
			return err
		}
		return ErrBack
	}
	for i := 0; ; {
		c := res.Cards[i]
		draw := func() {
			dk.show("history_card", fmt.Sprintf("%d/%d %s", i+1, len(res.Cards), dk.lang.Text("state_"+string(c.State))),
				layout.MaskSerial(c.Serial), layout.DateIT(c.Expiry))
		}
		draw()
		k, err := dk.key(ctx, "history_card", draw)
		if err != nil {
			return err
		}
		switch k {
		case hal.KeyOK:
			i = min(i+1, len(res.Cards)-1)
		case hal.KeyBack:
			if i == 0 {
				return ErrBack
			}
			i--
		case '1':
			return dk.finishKind(ctx, e, cms.KindHistory, info, append(dk.historyLines(res), v.lines()...))
		case hal.KeyCancel:
			dk.show("cancelled")
			return ErrCancel
		}
	}
}
