package firmware

import (
	"fmt"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// MaskCF hides the part of a codice fiscale that tells birth date and
// place: RSSMRA80A01H501U → RSS**********01U.
func MaskCF(cf string) string {
	if len(cf) != 16 {
		return "****************"
	}
	return cf[:3] + "**********" + cf[13:]
}

// LocalID is the provisional identifier of an operation not yet answered
// by the hub: totem and sequence number.
func LocalID(totem string, seq uint64) string {
	return fmt.Sprintf("%s-%06d", totem, seq)
}

// receipt lays out the receipt of an operation. It shows codes and a
// masked CF, never names or health details.
func (a *App) receipt(e outbox.Entry, title string, info hal.CardInfo, lines []string) *hal.Doc {
	d := &hal.Doc{Title: title}
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	add(hal.Block{Kind: hal.Text, Text: a.o.ASL, Align: hal.Center, Bold: true})
	add(hal.Block{Kind: hal.Text, Text: "Totem " + a.o.Totem + " - " + a.o.Location, Align: hal.Center})
	add(hal.Block{Kind: hal.Rule})
	add(hal.Block{Kind: hal.Text, Text: title, Align: hal.Center, Bold: true, Large: true})
	add(hal.Block{Kind: hal.Feed})
	text("Data: " + a.now().Format("02/01/2006 15:04"))
	if info.CF != "" { // none when the citizen came without the card
		text("Codice fiscale: " + MaskCF(info.CF))
	}
	add(hal.Block{Kind: hal.Rule})
	for _, l := range lines {
		text(l)
	}
	add(hal.Block{Kind: hal.Rule})
	var ref string
	switch {
	case !e.Done:
		add(hal.Block{Kind: hal.Text, Text: "RICEVUTA PROVVISORIA", Align: hal.Center, Bold: true})
		text("Identificativo locale: " + LocalID(a.o.Totem, e.Seq))
		text("L'operazione è registrata sul totem e sarà trasmessa appena possibile. L'esito definitivo sarà disponibile allo sportello e sul Fascicolo.")
		ref = "L:" + LocalID(a.o.Totem, e.Seq)
	default:
		r := e.Result
		text("Protocollo: " + r.Transport.Protocol)
		esito := "ACCOLTA"
		if r.Processing.Status == protocol.ProcessingRejected {
			esito = "RESPINTA"
		}
		add(hal.Block{Kind: hal.Text, Text: "Esito: " + esito, Bold: true})
		for _, er := range r.Processing.Errors {
			text(er.Code + ": " + er.Message)
		}
		ref = "P:" + r.Transport.Protocol
	}
	add(hal.Block{Kind: hal.QR, Text: "TOTEM|" + a.o.Totem + "|" + ref})
	add(hal.Block{Kind: hal.Text, Text: "Conservare la ricevuta.", Align: hal.Center})
	return d
}
