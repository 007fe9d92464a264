package firmware

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
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

var transportTexts = map[string]string{
	protocol.TransportReceived: "ricevuta", protocol.TransportRefused: "rifiutata (da reinviare)",
}

var processingTexts = map[string]string{
	protocol.ProcessingAccepted: "ACCOLTA", protocol.ProcessingRejected: "RESPINTA",
	protocol.ProcessingPending: "in elaborazione",
}

func orCode(m map[string]string, s string) string {
	if t, ok := m[s]; ok {
		return t
	}
	return s
}

// sendLogDoc lays out entries (newest first) as the elenco invii. Times
// are the totem's clock at enqueue, data only: a "?" marks one taken
// before the clock was synchronised.
func (a *App) sendLogDoc(entries []outbox.Entry) *hal.Doc {
	d := &hal.Doc{Title: "Elenco invii"}
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	add(hal.Block{Kind: hal.Text, Text: a.o.ASL, Align: hal.Center, Bold: true})
	add(hal.Block{Kind: hal.Text, Text: "Totem " + a.o.Totem + " - " + a.o.Location, Align: hal.Center})
	add(hal.Block{Kind: hal.Rule})
	add(hal.Block{Kind: hal.Text, Text: "Elenco invii", Align: hal.Center, Bold: true, Large: true})
	add(hal.Block{Kind: hal.Feed})
	text("Stampato: " + a.now().Format("02/01/2006 15:04"))
	text(fmt.Sprintf("Operazioni: %d, dalla più recente", len(entries)))
	unsynced := false
	for _, e := range entries {
		add(hal.Block{Kind: hal.Rule})
		at := e.Created.Local().Format("02/01/2006 15:04:05")
		if e.Stamp != nil && !e.Stamp.Synced {
			at += "?"
			unsynced = true
		}
		add(hal.Block{Kind: hal.Text, Text: fmt.Sprintf("N. %d  %s", e.Seq, at), Bold: true})
		text("Tipo: " + e.Kind)
		text("Id: " + e.ID)
		sent := fmt.Sprintf("Invii: %d", e.Attempts)
		if !e.LastSent.IsZero() {
			sent += ", ultimo " + e.LastSent.Local().Format("02/01 15:04:05")
		}
		text(sent)
		if e.Quarantine != "" {
			text("Stato: in quarantena (" + e.Quarantine + ")")
		}
		switch {
		case e.Result == nil && e.Quarantine == "":
			text("Stato: in attesa di esito")
		case e.Result != nil:
			r := e.Result
			prot := r.Transport.Protocol
			if prot == "" {
				prot = "-"
			}
			text("Protocollo: " + prot)
			tr := "Esito trasmissione: " + orCode(transportTexts, r.Transport.Status)
			if r.Duplicate {
				tr += " (duplicato)"
			}
			text(tr)
			text("Esito elaborazione: " + orCode(processingTexts, r.Processing.Status))
			if len(r.Processing.Errors) > 0 {
				codes := make([]string, len(r.Processing.Errors))
				for i, er := range r.Processing.Errors {
					codes[i] = er.Code
				}
				text("Errori: " + strings.Join(codes, " "))
			}
		}
	}
	add(hal.Block{Kind: hal.Rule})
	if len(entries) == 0 {
		text("Nessuna operazione registrata.")
	}
	if unsynced {
		text("? = orologio del totem non sincronizzato")
	}
	text("Orari secondo l'orologio del totem.")
	return d
}

// printSendLog prints the newest n entries of the send log through the
// print queue (n out of range: the default, or the maximum).
func (a *App) printSendLog(ctx context.Context, n int) (any, error) {
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
	doc := a.sendLogDoc(entries)
	type reply struct {
		Job     uint64 `json:"job,omitempty"` // the print job; 0 without a queue
		Entries int    `json:"entries"`
		Printed bool   `json:"printed"`
		Printer string `json:"printer,omitempty"` // why not (yet): the queue retries
	}
	if a.o.Jobs == nil {
		if err := a.print(ctx, doc, ""); err != nil {
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
