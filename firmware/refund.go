package firmware

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
)

// The refund of the reader fee (seed 003: "Rimborsa") is ops' action on the
// totem's send log, beside the cancellation it follows: `totemctl refund
// TOTEM OPID` names the reader request, the totem builds the refund from the
// original it keeps (no personal data in the command), sends it in sequence
// and prints its receipt here, where the citizen who asked at the counter
// collects it for the cashier.

// printReply is the data of a console command that printed a document.
type printReply struct {
	Job     uint64 `json:"job,omitempty"` // the print job; 0 without a queue
	Entries int    `json:"entries,omitempty"`
	Printed bool   `json:"printed"`
	Printer string `json:"printer,omitempty"` // why not (yet): the queue retries
}

// PrintRefund prints the receipt of the refund e of the reader request
// orig, whose protocol number is original.
func (ct consoleTotem) PrintRefund(ctx context.Context, e outbox.Entry, original string, orig cms.ReaderRequest) (any, error) {
	a := ct.a
	var res cms.RefundResult
	if e.Done && len(e.Result.Data) > 0 {
		if err := json.Unmarshal(e.Result.Data, &res); err != nil {
			return nil, fmt.Errorf("firmware: refund: result: %w", err)
		}
	}
	doc := a.Frame().Receipt(e, kindTitle(cms.KindRefund), hal.CardInfo{CF: orig.Card.CF}, a.Frame().Refund(original, orig.Payment.Reference, res))
	return a.printJob(ctx, doc, e.ID)
}

// printJob prints doc for a console command through the print queue and
// waits, bounded, for the first attempt: a printer out of paper leaves the
// job queued, and the console sees its state with "jobs".
func (a *App) printJob(ctx context.Context, doc *hal.Doc, opID string) (printReply, error) {
	if a.o.Jobs == nil {
		if err := a.Print(ctx, doc, opID); err != nil {
			return printReply{}, err
		}
		return printReply{Printed: true}, nil
	}
	j, first, err := a.o.Jobs.Add(doc, opID)
	if err != nil {
		return printReply{}, err
	}
	rep := printReply{Job: j.ID}
	select {
	case err := <-first:
		rep.Printed = err == nil
		if err != nil {
			rep.Printer = err.Error()
		}
	case <-a.clock.After(printWait):
		rep.Printer = hal.ErrNotResponding.Error()
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	return rep, nil
}
