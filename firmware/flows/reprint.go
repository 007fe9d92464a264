package flows

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/hal"
)

var reprintKeys = map[hal.Key]string{
	'1': cms.ReprintForgotten, '2': cms.ReprintLost, '3': cms.ReprintNotReceived, '4': cms.ReprintBlocked,
}

// Reprint is Ristampa PIN/PUK, self-service with the card in the reader:
// no PIN is asked (it may be what was forgotten); ReprintVia.
func Reprint(ctx context.Context, dk *Desk, info hal.CardInfo) error {
	return ReprintVia(ctx, dk, info, &Via{})
}

// ReprintVia is Ristampa PIN/PUK for the citizen identified by v: the
// reason, then v's steps (who asks, in person or by delegation, and their
// document), the CMS's answer, the receipt with the first halves.
func ReprintVia(ctx context.Context, dk *Desk, info hal.CardInfo, v *Via) error {
	if err := dk.Reachable(ctx, cms.KindReprint); err != nil {
		return err
	}
	var reason string
	err := steps(append([]func() error{func() error {
		k, err := dk.choose(ctx, "reprint_reason")
		reason = reprintKeys[k]
		return err
	}}, v.steps...)...)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(cms.ReprintRequest{Card: CardRef(info), Channel: v.channel(), Operator: v.op,
		Delegate: v.p.deleg, Document: v.document(), Reason: reason})
	if err != nil {
		return err
	}
	dk.logOp(v, cms.KindReprint)
	e, err := dk.submit(ctx, cms.KindReprint, payload)
	if err != nil {
		return err
	}
	if rejected(e) {
		return dk.showRejection(ctx, e)
	}
	var res cms.ReprintResult
	if err := json.Unmarshal(e.Result.Data, &res); err != nil || res.PINFirstHalf == "" {
		dk.log.Error("reprint result", "op_id", e.ID, "err", err)
		dk.show("unavailable")
		return errors.New("firmware: reprint result without codes")
	}
	return dk.finishKind(ctx, e, cms.KindReprint, info, append(layout.Reprint(reason, res), v.lines()...))
}
