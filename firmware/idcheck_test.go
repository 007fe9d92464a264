package firmware_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
)

// The second identity check (seed 002, step 5): before the operator
// confirms, the totem reads the CMS's record of the card and shows the
// holder as the CMS knows them; a card the CMS knows otherwise sends the
// citizen to the sportello Scelta e Revoca and nothing is done; with the
// CMS out of reach a queueable operation checks on the chip's data and
// says so.
func TestSecondIdentityCheck(t *testing.T) {
	otherCF := func() *sim.Card { // the chip says another CF than the CMS
		c := testCard()
		c.Info.CF = "RSSMRA80A01H501V"
		return c
	}
	consent := []step{{"1 Attivazione", "#"}, {"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}, {"1 Diretta", "1"}, {"Documento:", "1"},
		{"Numero documento", taps("CA12345AB", tapUpper)}, {"GGMMAAAA", "31122035#"}}
	for _, tc := range []struct {
		name    string
		card    *sim.Card
		online  bool
		script  []step
		want    string
		lookups int
		kind    string // the operation queued after the check, "": none
	}{
		{name: "the CMS's record shown, the operator confirms", card: testCard(), online: true,
			script: cat(consent, []step{{"CMS: ROSSI MARIO", ""}, {"nato/a il 01/01/1980", "1"},
				{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "1"}, {"Riepilogo:", "#"}}),
			want: "Accolta. Protocollo:", lookups: 1, kind: cms.KindConsent},
		{name: "the CMS's record shown, the document differs", card: testCard(), online: true,
			script: cat(consent, []step{{"CMS: ROSSI MARIO", "2"}}), want: "Documento e dati", lookups: 1},
		{name: "the CMS knows the card otherwise", card: otherCF(), online: true,
			script: cat(consent, []step{{"della tessera non", "#"}}), want: "rivolgersi allo", lookups: 1},
		// A delegate's document is checked against the delegate's name
		// (issue 17); the CMS's record was still read (a card it knows
		// otherwise would stop here).
		{name: "a minor's card, the delegate's document", card: sim.MinorCard(), online: true,
			script: []step{{"1 Attivazione", "1"}, {"informativa", "1"}, {"1 Diretta", "2"}, {"Cognome nome deleg.", taps("ROSSI MARIO", tapName)},
				{"Cod. fiscale deleg.", taps("RSSMRA80A01H501U", tapUpper)}, {"Documento:", "1"}, {"Numero documento", taps("CA12345AB", tapUpper)},
				{"GGMMAAAA", "31122035#"}, {"Documento delegato:", ""}, {"ROSSI MARIO", "D"}},
			want: "Operazione annullata", lookups: 1},
		{name: "a revoked card, no birth date on record", card: revokedCard(), online: true,
			script: []step{{"1 Attivazione", "#"}, {"5 Storico", "5"}, {"Documento:", "1"}, {"Numero documento", taps("CA12345AB", tapUpper)},
				{"GGMMAAAA", "31122035#"}, {"CMS: BIANCHI LAURA", ""}, {"nato/a il -", "1"}, {"1 Tutte le tessere", "1"}, {"Storico 1/", "1"}},
			want: "Storico stampato:", lookups: 1, kind: cms.KindHistory},
		{name: "CMS out of reach: the chip's data", card: testCard(), online: false,
			script: cat(consent, []step{{"Archivio CMS non", "#"}, {"dati giusti?", "1"},
				{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "1"}, {"Riepilogo:", "#"}}),
			want: "Salvata: l'esito", kind: cms.KindConsent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d, lb := deskWithCard(t, tc.online, tc.card)
			d.run(ctx, tc.script)
			d.wait(ctx, tc.want)
			ops, lookups := d.ops()
			if lookups != tc.lookups {
				t.Fatalf("%d lookups, want %d", lookups, tc.lookups)
			}
			if (tc.kind == "") != (len(ops) == 0) || tc.kind != "" && ops[0].Kind != tc.kind {
				t.Fatalf("entries %+v", ops)
			}
			for _, never := range []string{"ROSSI", "VERDI", "RSSMRA80A01H501", "CA12345AB"} {
				if strings.Contains(lb.String(), never) {
					t.Errorf("log holds %q", never)
				}
			}
			d.reader.Remove()
			d.wait(ctx, "Inserire la TS del")
			d.panel.Press(hal.KeyCancel)
			d.wait(ctx, "Inserire la tessera")
		})
	}
}

// Consents by a delegate at the counter with the hub out of reach: the
// identity check on the chip's data, the declaration signed, the consents
// made durable and a provisional receipt naming the delegate and the
// declaration; nothing about the FSE yet.
func TestAssistedDelegateConsentsOffline(t *testing.T) {
	ctx := ctxT(t)
	d := startDeskOpts(t, localOpts{online: func() bool { return false }})
	d.login(ctx)
	d.reader.Insert(testCard())
	d.run(ctx, cat([]step{{"1 Attivazione", "#"}, {"3 Consensi FSE", "3"}, {"Informativa FSE", "#"},
		{"1 Diretta", "3"}, {"Cognome nome deleg.", taps("VERDI ANNA", tapName)}, {"Cod. fiscale deleg.", taps("VRDNNA70M50F205B", tapUpper)}},
		[]step{{"Documento:", "1"}, {"Numero documento", taps("CA12345AB", tapUpper)}, {"GGMMAAAA", "31122035#"},
			{"Archivio CMS non", "#"}, {"dati giusti?", "1"},
			{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo:", "#"}, {"Far firmare", "1"}}))
	d.wait(ctx, "Salvata: l'esito")
	ops, lookups := d.ops()
	if lookups != 0 || len(ops) != 1 || ops[0].Kind != cms.KindConsent || ops[0].Done {
		t.Fatalf("entries %+v, %d lookups", ops, lookups)
	}
	full, err := d.box.Get(ops[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var req cms.ConsentRequest
	if err := json.Unmarshal(full.Payload, &req); err != nil || req.Delegate == nil || req.Delegate.Kind != cms.DelegTutor ||
		!req.Declaration || req.Document == nil || !req.Document.Checked {
		t.Fatalf("payload %s, %v", full.Payload, err)
	}
	rs := d.printer.Receipts()
	if len(rs) != 2 {
		t.Fatalf("%d documents printed", len(rs))
	}
	r := strings.Join(strings.Fields(rs[1]), " ")
	for _, want := range []string{"RICEVUTA PROVVISORIA", "Richiesta: su delega (tutore)", "Dichiarazione sostitutiva firmata"} {
		if !strings.Contains(r, want) {
			t.Errorf("receipt lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r, "Fascicolo Sanitario Elettronico:") {
		t.Errorf("a provisional receipt tells the FSE: %s", r)
	}
}
