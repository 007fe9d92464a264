package firmware

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// readerRequest is Richiesta lettore, self-service and queued.
func (a *App) readerRequest(ctx context.Context, info hal.CardInfo) error {
	return a.readerVia(ctx, info, &via{})
}

// readerVia is Richiesta lettore for the citizen identified by v: v's
// steps, the reference of the 4,20 € payment receipt typed on the keypad,
// durable enqueue, receipt.
func (a *App) readerVia(ctx context.Context, info hal.CardInfo, v *via) error {
	var ref []byte
	err := steps(append(slices.Clip(v.steps), func() (err error) {
		ref, err = a.enter(ctx, "payment", 6, 20, false)
		return err
	})...)
	if err != nil {
		return err
	}
	req := cms.ReaderRequest{Card: cardRef(info), Channel: v.channel(), Operator: v.op, Document: v.document(),
		Payment: cms.Payment{Reference: string(ref), AmountCents: cms.ReaderFeeCents}}
	payload, err := json.Marshal(req)
	if err != nil {
		return err
	}
	a.logOp(v, cms.KindReader)
	a.show("saving")
	e, err := a.submit(ctx, cms.KindReader, payload)
	if err != nil {
		return err
	}
	var res cms.ReaderResult
	if e.Done && len(e.Result.Data) > 0 {
		json.Unmarshal(e.Result.Data, &res)
	}
	return a.finishKind(ctx, e, cms.KindReader, info, append(readerLines(string(ref), res), v.lines()...))
}
