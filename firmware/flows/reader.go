package flows

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// ReaderRequest is Richiesta lettore, self-service and queued.
func ReaderRequest(ctx context.Context, dk *Desk, info hal.CardInfo) error {
	return ReaderVia(ctx, dk, info, &Via{})
}

// ReaderVia is Richiesta lettore for the citizen identified by v: v's
// steps, the reference of the 4,20 € payment receipt typed on the keypad,
// durable enqueue, receipt.
func ReaderVia(ctx context.Context, dk *Desk, info hal.CardInfo, v *Via) error {
	var ref []byte
	err := steps(append(slices.Clip(v.steps), func() (err error) {
		ref, err = dk.enterFrom(ctx, "payment", 6, 20, false, ref)
		return err
	}, func() error {
		// What is about to be sent, and # to send it (issue 17): a typo
		// in the number is seen here, not at the counter.
		_, err := dk.choose(ctx, "reader_confirm", string(ref))
		return err
	})...)
	if err != nil {
		return err
	}
	req := cms.ReaderRequest{Card: CardRef(info), Attendance: v.attendance(),
		Payment: cms.Payment{Reference: string(ref), AmountCents: cms.ReaderFeeCents}}
	e, err := save(ctx, dk, v, cms.KindReader, req)
	if err != nil {
		return err
	}
	var res cms.ReaderResult
	if e.Done && len(e.Result.Data) > 0 {
		json.Unmarshal(e.Result.Data, &res)
	}
	lines := dk.t.Frame().Reader(string(ref), res)
	if rejected(e) {
		lines = dk.t.Frame().ReaderRejected(string(ref))
	}
	return dk.finishKind(ctx, e, cms.KindReader, info, append(lines, v.lines(dk.t.Frame())...))
}
