package firmware

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

// wrongData is Dati errati with the card in the reader.
func (a *App) wrongData(ctx context.Context, info hal.CardInfo) error {
	k, err := a.ask(ctx, "wrong_data_field")
	if err != nil {
		return err
	}
	fields, ok := wrongDataKeys[k]
	if !ok {
		if k == hal.KeyBack {
			return errBack
		}
		a.show("cancelled")
		return errCancel
	}
	payload, err := json.Marshal(cms.WrongDataReport{Card: cardRef(info), Channel: cms.SelfService, Fields: fields})
	if err != nil {
		return err
	}
	a.show("saving")
	e, err := a.submit(ctx, cms.KindWrongData, payload)
	if err != nil {
		return err
	}
	a.show("printing")
	var outcome string
	switch {
	case !e.Done:
		outcome = a.o.Lang.Text("wrong_data_saved")
	case rejected(e):
		msg := "-"
		if len(e.Result.Processing.Errors) > 0 {
			msg = e.Result.Processing.Errors[0].Message
		}
		outcome = fmt.Sprintf(a.o.Lang.Text("wrong_data_refused"), msg)
	default:
		outcome = fmt.Sprintf(a.o.Lang.Text("wrong_data_done"), e.Result.Transport.Protocol)
	}
	if perr := a.print(ctx, a.receipt(e, kindTitle(cms.KindWrongData), info, wrongDataLines()), e.ID); perr != nil {
		outcome += " " + fmt.Sprintf(a.o.Lang.Text("receipt_pending"), a.printerText(perr))
	}
	return a.pages(ctx, hal.Wrap(outcome+" "+a.o.Lang.Text("refuse_wrong_data"), 20))
}
