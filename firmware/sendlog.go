package firmware

import (
	"context"
	"fmt"
	"time"

	"github.com/aslcns/totem/hal"
)

// The elenco invii as a receipt (product.md): the technician's
// sendlog_print command prints the totem's newest operations with their
// transmissions and both outcomes. It holds codes only — sequence number,
// op id, kind, protocol number, outcomes, error codes — never a payload,
// a CF, a name or the CMS's error messages (they may quote the request).

// Bounds of sendlog_print's n.
const (
	sendLogPrintDefault = 20
	sendLogPrintMax     = 100
)

// PrintSendLog prints the newest n entries of the send log through the
// print queue (n out of range: the default, or the maximum).
func (ct consoleTotem) PrintSendLog(ctx context.Context, n int) (any, error) {
	a := ct.a
	switch {
	case n <= 0:
		n = sendLogPrintDefault
	case n > sendLogPrintMax:
		n = sendLogPrintMax
	}
	entries, err := a.o.Outbox.Recent(n)
	if err != nil {
		return nil, err
	}
	doc := a.Frame().SendLog(entries)
	type reply struct {
		Job     uint64 `json:"job,omitempty"` // the print job; 0 without a queue
		Entries int    `json:"entries"`
		Printed bool   `json:"printed"`
		Printer string `json:"printer,omitempty"` // why not (yet): the queue retries
	}
	if a.o.Jobs == nil {
		if err := a.Print(ctx, doc, ""); err != nil {
			return nil, fmt.Errorf("firmware: sendlog_print: %w", err)
		}
		return reply{Entries: len(entries), Printed: true}, nil
	}
	j, first, err := a.o.Jobs.Add(doc, "")
	if err != nil {
		return nil, fmt.Errorf("firmware: sendlog_print: %w", err)
	}
	rep := reply{Job: j.ID, Entries: len(entries)}
	// The first attempt, bounded: a printer out of paper leaves the job
	// queued, and the console sees its state with "jobs".
	t := time.NewTimer(printWait)
	defer t.Stop()
	select {
	case err := <-first:
		rep.Printed = err == nil
		if err != nil {
			rep.Printer = err.Error()
		}
	case <-t.C:
		rep.Printer = hal.ErrNotResponding.Error()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return rep, nil
}
