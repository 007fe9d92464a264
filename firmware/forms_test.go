package firmware_test

import (
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
)

// Modulistica prints blank forms with or without a card, one after the
// other; a printer fault is said; nothing is queued. The Guida pages its
// help and goes back where it came from.
func TestFormsAndGuide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		card     bool
		paperOut bool
		form     hal.Key
		title    string
	}{
		{"delegation without a card", false, false, '2', "Modulo di delega"},
		{"revocation form with the card", true, false, '4', "Modulo di revoca"},
		{"reader form, paper out", false, true, '1', "Modulo richiesta lettore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			l := startLocal(t, time.Minute)
			l.wait(ctx, "Senza tessera #=Menu")
			back := "7 Revoca tessera" // where Back from the forms leads
			if tc.card {
				l.insert(ctx, testCard())
				back = "1 Consensi FSE"
			}
			if tc.paperOut {
				l.printer.SetStatus(hal.PrinterStatus{Online: true, PaperOut: true})
			}
			l.panel.Press('8')
			l.run(ctx, []step{{"2 Delega", string(tc.form)}})
			if tc.paperOut {
				l.wait(ctx, "Modulo non stampato")
				l.wait(ctx, "carta esaurita")
				l.printer.SetStatus(hal.PrinterStatus{Online: true}) // it comes out when the paper is back
			} else {
				l.wait(ctx, "Modulo stampato")
			}
			l.receipts(ctx, 1)
			r := flat(l.printer.Receipts()[0])
			mustContain(t, "form", r, tc.title, "Firma: ____", "Stampato dal totem t-local")
			mustNotContain(t, "blank form", r, "RSSMRA80A01H501U", "ROSSI", "6090012345678000", "Codice fiscale: RSS")
			l.panel.Press(hal.KeyOK) // another form
			l.run(ctx, []step{{"3 Dich. sostitutiva", "*"}, {back, "9"}})
			l.wait(ctx, "Con la tessera nel")
			mustContain(t, "guide", readPages(ctx, t, l.totem), "6 sblocco PIN con il PUK", "Senza tessera: 7 revoca con codice TEAM e CIP", "D esce")
			l.panel.Press(hal.KeyOK)
			l.wait(ctx, back)
			if q, _ := l.box.Stats(); q.LastSeq != 0 {
				t.Fatalf("forms queued an operation: %+v", q)
			}
		})
	}
}
