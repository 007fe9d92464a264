package firmware

import (
	"context"
	"fmt"
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
	rep, err := a.printJob(ctx, doc, "")
	if err != nil {
		return nil, fmt.Errorf("firmware: sendlog_print: %w", err)
	}
	rep.Entries = len(entries)
	return rep, nil
}
