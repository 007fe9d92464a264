package flows

import (
	"context"
	"errors"

	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/hal"
)

// Modulistica: blank forms a citizen fills in at home and brings to the
// counter, printed at the totem with or without a card; and the Guida.
// Forms hold no personal data: only the totem and the date are printed.

// form is a blank form: its receipt title and its body, in Italian. A
// line "_" is a blank to fill in, "[ ] …" a box to tick.
type form struct {
	title string
	body  []string
}

const blank = "_"

var forms = map[hal.Key]form{
	'1': {"Modulo richiesta lettore", []string{
		"Richiesta di un lettore di smart card per la Tessera Sanitaria (TS-CNS).",
		"Cognome e nome del titolare:", blank,
		"Codice fiscale:", blank,
		"Codice TEAM (20 cifre sul retro della tessera):", blank,
		"Ricevuta di pagamento (4,20 €) n.:", blank,
		"Il lettore è registrato sulla tessera; si ritira allo sportello con questo modulo firmato e la ricevuta di pagamento.",
	}},
	'2': {"Modulo di delega", []string{
		"Il/la sottoscritto/a (titolare della tessera):", blank,
		"Codice fiscale:", blank,
		"delega il/la sig./sig.ra:", blank,
		"Codice fiscale del delegato:", blank,
		"a chiedere per suo conto:",
		"[ ] Ristampa PIN/PUK",
		"[ ] Revoca della tessera",
		"[ ] Richiesta lettore",
		"[ ] Storico della tessera",
		"Allegare copia del documento di identità del delegante; il delegato presenta il proprio allo sportello.",
	}},
	'3': {"Dichiarazione sostitutiva", []string{
		"Dichiarazione sostitutiva di certificazione (art. 46 D.P.R. 445/2000).",
		"Il/la sottoscritto/a:", blank,
		"Codice fiscale:", blank,
		"consapevole delle sanzioni penali previste dall'art. 76 del D.P.R. 445/2000 per le dichiarazioni mendaci, dichiara di esercitare:",
		"[ ] la potestà parentale (titolare minorenne)",
		"[ ] la tutela",
		"[ ] la curatela",
		"sul/sulla titolare della tessera:", blank,
		"Codice fiscale del titolare:", blank,
	}},
	'4': {"Modulo di revoca", []string{
		"Richiesta di revoca della Tessera Sanitaria (TS-CNS), con richiesta di una nuova tessera.",
		"Cognome e nome del titolare:", blank,
		"Codice fiscale:", blank,
		"Codice TEAM (20 cifre sul retro della tessera):", blank,
		"Motivo:",
		"[ ] Furto",
		"[ ] Smarrimento",
		"[ ] Malfunzionamento",
		"[ ] Richiesta presentata da un delegato (allegare la delega)",
		"Con il codice TEAM e il CIP (sul foglio consegnato all'attivazione con le prime metà di PIN e PUK) la revoca si può fare anche al totem, senza la tessera.",
	}},
}

// FormDoc lays out the blank form on key k of the Modulistica, in frame
// fr (only its ASL, totem and date are printed); nil for no form.
func FormDoc(fr layout.Frame, k hal.Key) *hal.Doc {
	f, ok := forms[k]
	if !ok {
		return nil
	}
	d := &hal.Doc{Title: f.title}
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	add(hal.Block{Kind: hal.Text, Text: fr.ASL, Align: hal.Center, Bold: true})
	add(hal.Block{Kind: hal.Rule})
	add(hal.Block{Kind: hal.Text, Text: f.title, Align: hal.Center, Bold: true, Large: true})
	add(hal.Block{Kind: hal.Feed})
	for _, l := range f.body {
		if l == blank {
			add(hal.Block{Kind: hal.Text, Text: "____________________________"})
			add(hal.Block{Kind: hal.Feed})
			continue
		}
		add(hal.Block{Kind: hal.Text, Text: l})
	}
	add(hal.Block{Kind: hal.Feed})
	add(hal.Block{Kind: hal.Text, Text: "Data: ______________"})
	add(hal.Block{Kind: hal.Feed})
	add(hal.Block{Kind: hal.Text, Text: "Firma: _____________________"})
	add(hal.Block{Kind: hal.Rule})
	add(hal.Block{Kind: hal.Text, Text: "Stampato dal totem " + fr.Totem + " il " + fr.Now.Format("02/01/2006"), Align: hal.Center})
	return d
}

// Forms is Modulistica: the list of blank forms, each printed on a key,
// until the citizen goes back.
func Forms(ctx context.Context, dk *Desk) error {
	for {
		k, f, err := pick(ctx, dk, "forms", forms)
		if err != nil {
			return err
		}
		dk.show("printing")
		dk.log.Info("form printed", "form", f.title)
		screen, args := "form_printed", []any(nil)
		if err := dk.print(ctx, FormDoc(dk.t.Frame(), k), ""); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			screen, args = "form_not_printed", []any{dk.printerText(err)}
		}
		if k, err = dk.Ask(ctx, screen, args...); err != nil {
			return err
		}
		if k == hal.KeyCancel {
			return ErrBack
		}
	}
}

// Guide is the Guida: a short help, paged.
func Guide(ctx context.Context, dk *Desk) error {
	dk.log.Info("guide shown")
	err := dk.Pages(ctx, hal.Wrap(dk.lang.Text("guide"), 20))
	if errors.Is(err, ErrCancel) {
		return ErrBack // leaving the help cancels nothing
	}
	return err
}
