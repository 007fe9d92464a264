package firmware

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

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
	e, err := a.submit(ctx, cms.KindReprint, payload)
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
	return a.finishKind(ctx, e, cms.KindReprint, info, append(reprintLines(reason, res), v.lines()...))
}
