package flows

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// Dati errati: the citizen says the personal data on the card are wrong.
// The totem cannot correct them: it queues a report for the CMS
// (queueable: a provisional receipt offline) and tells the citizen to go
// to the sportello Scelta e Revoca of their ASL, which does.

var wrongDataKeys = map[hal.Key][]string{
	'1': {"cognome", "nome"},
	'2': {"data_nascita", "luogo_nascita", "sesso"},
	'3': {"codice_fiscale"},
}

// WrongData is Dati errati with the card in the reader.
func WrongData(ctx context.Context, dk *Desk, info hal.CardInfo) error {
	_, fields, err := pick(ctx, dk, "wrong_data_field", wrongDataKeys)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(cms.WrongDataReport{Card: CardRef(info), Channel: cms.SelfService, Fields: fields})
	if err != nil {
		return err
	}
	dk.show("saving")
	e, err := dk.submit(ctx, cms.KindWrongData, payload)
	if err != nil {
		return err
	}
	dk.show("printing")
	var outcome string
	switch {
	case !e.Done:
		outcome = dk.lang.Text("wrong_data_saved")
	case rejected(e):
		outcome = fmt.Sprintf(dk.lang.Text("wrong_data_refused"), RejectionText(dk.lang, e))
	default:
		outcome = fmt.Sprintf(dk.lang.Text("wrong_data_done"), e.Result.Transport.Protocol)
	}
	if perr := dk.print(ctx, dk.receipt(e, dk.title(cms.KindWrongData), info, dk.t.Frame().WrongData()), e.ID); perr != nil {
		outcome += " " + fmt.Sprintf(dk.lang.Text("receipt_pending"), dk.printerText(perr))
	}
	return dk.Pages(ctx, hal.Wrap(outcome+" "+dk.lang.Text("refuse_wrong_data"), 20))
}
