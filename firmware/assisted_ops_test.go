package firmware_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
)

// The operations that are "self-service or assisted", in an operator
// session: the operator's document check stands in for the card's PIN,
// and every request carries the assisted channel and the operator.
func TestAssistedSelfServiceOps(t *testing.T) {
	history := []step{{"1 Tutte le tessere", "1"}, {"1=Stampa", "1"}}
	for _, tc := range []struct {
		name   string
		card   *sim.Card
		online bool
		script []step // from the second page of the menu
		want   string
		kind   string // queued, with this kind ("": nothing queued)
		// accepted by the CMS, or rejected with code.
		accepted bool
		code     string
		deleg    string
		receipt  []string // the receipt holds these
		prints   int      // documents printed before it (the declaration, the informativa)
	}{
		{name: "consents", card: testCard(), online: true,
			script: cat([]step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}}, directSteps,
				[]step{{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo:", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindConsent, accepted: true,
			receipt: []string{"Consensi FSE", "Richiesta: diretta, dal titolare", "Fascicolo Sanitario Elettronico: attivo."}},
		{name: "consents, the informativa printed first", card: testCard(), online: true,
			script: cat([]step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "1"}, {"Informativa FSE", "#"}}, directSteps,
				[]step{{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo:", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindConsent, accepted: true, prints: 1,
			receipt: []string{"Consensi FSE"}},
		{name: "consents, back to the document check", card: testCard(), online: true,
			script: cat([]step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}}, directSteps,
				[]step{{"Consenso 1 di 2", "*"}, {"dati giusti?", "1"}, {"Consenso 1 di 2", "2"}, {"Consenso 2 di 2", "2"}, {"Riepilogo:", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindConsent, accepted: true},
		{name: "consents by the tutore, declaration signed", card: testCard(), online: true,
			script: cat([]step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}}, delegSteps("3", "VERDI ANNA", "VRDNNA70M50F205B"),
				[]step{{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "1"}, {"Riepilogo:", "#"}, {"Far firmare", "1"}}),
			want: "Accolta. Protocollo:", kind: cms.KindConsent, accepted: true, deleg: cms.DelegTutor, prints: 1,
			receipt: []string{"Richiesta: su delega (tutore)", "Delegato: codice fiscale VRD**********05B", "Dichiarazione sostitutiva firmata"}},
		{name: "consents by a parent for an adult: refused at the panel", card: testCard(), online: true,
			script: []step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}, {"1 Diretta", "2"}, {"solo per i", "D"}},
			want:   "Operazione annullata"},
		{name: "consents by the curatore, declaration not signed", card: testCard(), online: true,
			script: cat([]step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}}, delegSteps("4", "VERDI ANNA", "VRDNNA70M50F205B"),
				[]step{{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "1"}, {"Riepilogo:", "#"}, {"Far firmare", "D"}}),
			want: "Operazione annullata", prints: 1},
		{name: "consents, identity check failed", card: testCard(), online: true,
			script: []step{{"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}, {"1 Diretta", "1"}, {"Documento:", "1"}, {"Numero documento", taps("CA12345AB", tapUpper)},
				{"GGMMAAAA", "31122035#"}, {"dati giusti?", "2"}},
			want: "Documento e dati"},
		{name: "reprint, in person, the contact on file", card: testCard(), online: true,
			script: cat([]step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "1"}}, directSteps,
				[]step{{"SMS *********0001", "1"}, {"Codici dimenticati", ""}, {"SMS *********0001", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindReprint, accepted: true,
			receipt: []string{"Ristampa PIN/PUK", "Motivo: PIN o PUK dimenticato", "Prima metà del PIN:", "Richiesta: diretta, dal titolare",
				"Le seconde metà saranno inviate a: SMS *********0001"}},
		{name: "reprint, the second halves to a new e-mail", card: testCard(), online: true,
			script: cat([]step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "3"}}, directSteps,
				[]step{{"1=Questo", "3"}, {"Indirizzo e-mail", taps("mario.rossi@example.it", tapEmail)},
					{"m***@example.it", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindReprint, accepted: true,
			receipt: []string{"Le seconde metà saranno inviate a: e-mail m***@example.it"}},
		{name: "reprint, back from the summary to the channel, cancel", card: testCard(), online: true,
			script: cat([]step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "1"}}, directSteps,
				[]step{{"1=Questo", "2"}, {"Numero di cellulare", "3471234567#"}, {"Codici dimenticati", "*"},
					{"Numero di cellulare", "*"}, {"1=Questo", "D"}}),
			want: "Operazione annullata"},
		{name: "reprint by delegation", card: testCard(), online: true,
			script: cat([]step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "3"}}, delegSteps("3", "VERDI ANNA", "VRDNNA70M50F205B"),
				[]step{{"1=Questo", "1"}, {"Codici non giunti", "#"}}),
			want: "Accolta. Protocollo:", kind: cms.KindReprint, accepted: true, deleg: cms.DelegTutor,
			receipt: []string{"Richiesta: su delega (tutore)", "Delegato: codice fiscale VRD**********05B"}},
		{name: "reprint, back to the reason, cancel", card: testCard(), online: true,
			script: []step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "1"}, {"1 Diretta", "*"}, {"1 Codici dimenticati", "D"}},
			want:   "Operazione annullata"},
		{name: "reprint of a card not yet active", card: sim.IssuedCard(), online: true,
			script: cat([]step{{"4 Ristampa", "4"}, {"1 Codici dimenticati", "2"}}, directSteps,
				[]step{{"nessun recapito", "1"}, {"Codici smarriti", "#"}}),
			want: "rifiutata", kind: cms.KindReprint, code: cms.CodeCardNotActive},
		{name: "reprint offline", card: testCard(), online: false,
			script: []step{{"4 Ristampa", "4"}}, want: "disponibile ora"},
		{name: "history", card: testCard(), online: true,
			script: cat([]step{{"5 Storico", "5"}}, docSteps, history),
			want:   "Storico stampato", kind: cms.KindHistory, accepted: true,
			receipt: []string{"Storico tessera", "Tessera ************8000"}},
		{name: "history of a revoked card, at the counter", card: revokedCard(), online: true,
			script: cat([]step{{"5 Storico", "5"}}, docSteps, history),
			want:   "Storico stampato", kind: cms.KindHistory, accepted: true,
			receipt: []string{"revocata"}},
		{name: "history offline", card: testCard(), online: false,
			script: []step{{"5 Storico", "5"}}, want: "disponibile ora"},
		{name: "reader request", card: testCard(), online: true,
			script: cat([]step{{"6 Lettore", "6"}}, docSteps, []step{{"n. ricevuta", "420042#"}, {"#=Conferma", "#"}}),
			want:   "Accolta. Protocollo:", kind: cms.KindReader, accepted: true,
			receipt: []string{"Richiesta lettore", "Ricevuta di pagamento: 420042 (4,20 €)"}},
		{name: "reader request with an expired document", card: testCard(), online: true,
			script: []step{{"6 Lettore", "6"}, {"Documento:", "3"}, {"Numero documento", taps("U1234567X", tapUpper)},
				{"GGMMAAAA", "31122020#"}, {"Documento scaduto", "D"}},
			want: "Operazione annullata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d, lb := deskWithCard(t, tc.online, tc.card)
			d.run(ctx, append([]step{{"1 Attivazione", "#"}}, tc.script...))
			d.wait(ctx, tc.want)
			serial := tc.card.Info.Serial
			entries, lookups := d.ops()
			audit, err := d.store.Audit()
			if err != nil {
				t.Fatal(err)
			}
			audit = auditWithoutLookups(audit)
			// The second identity check read the CMS's record once, where
			// the flow reached it.
			if tc.kind != "" && lookups != 1 {
				t.Fatalf("%d lookups", lookups)
			}
			if tc.kind == "" {
				if len(entries) != 0 || len(audit) != 0 {
					t.Fatalf("refused at the totem, yet entries %+v audit %+v", entries, audit)
				}
			} else {
				if len(entries) != 1 || entries[0].Kind != tc.kind || !entries[0].Done {
					t.Fatalf("entries %+v", entries)
				}
				e := entries[0]
				if len(audit) != 1 || audit[0].Operator != opSerial || audit[0].Channel != cms.Assisted ||
					audit[0].Accepted != tc.accepted || audit[0].Serial != serial || audit[0].Kind != tc.kind {
					t.Fatalf("audit %+v", audit)
				}
				if tc.code != "" && (len(e.Result.Processing.Errors) == 0 || e.Result.Processing.Errors[0].Code != tc.code) {
					t.Fatalf("result %+v, want %s", e.Result.Processing, tc.code)
				}
				// What went to the CMS: the channel, the operator, the checked
				// document where the request type has one, the delegate.
				var req struct {
					Channel  string
					Operator string
					Document *cms.IDDocument
					Delegate *cms.Delegation
				}
				full, err := d.box.Get(e.ID)
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(full.Payload, &req); err != nil {
					t.Fatal(err)
				}
				needDoc := true // every assisted request names the document the operator checked
				if req.Channel != cms.Assisted || req.Operator != opSerial ||
					needDoc != (req.Document != nil) || req.Document != nil && (!req.Document.Checked || req.Document.Number != "CA12345AB") {
					t.Fatalf("payload %s", full.Payload)
				}
				if (req.Delegate != nil) != (tc.deleg != "") || tc.deleg != "" && (req.Delegate.Kind != tc.deleg || req.Delegate.CF != "VRDNNA70M50F205B") {
					t.Fatalf("delegate %+v", req.Delegate)
				}
			}
			if tc.kind == cms.KindConsent {
				rec, err := d.store.Consents(serial)
				if err != nil || rec.Channel != cms.Assisted || rec.Operator != opSerial {
					t.Fatalf("consents %+v, %v", rec, err)
				}
			}
			rs := d.printer.Receipts()
			if tc.accepted {
				if len(rs) != 1+tc.prints {
					t.Fatalf("%d receipts", len(rs))
				}
				r := strings.Join(strings.Fields(rs[tc.prints]), " ")
				outcome := "Esito: ACCOLTA"
				if tc.kind == cms.KindHistory { // an extract, not an outcome
					outcome = "Estratto dell'archivio, riferimento"
				}
				for _, want := range append([]string{"Operatore: carta ************2006", "Documento verificato: carta d'identità",
					outcome}, tc.receipt...) {
					if !strings.Contains(r, want) {
						t.Errorf("receipt lacks %q: %s", want, r)
					}
				}
				if strings.Contains(r, opSerial) || strings.Contains(r, "CA12345AB") || strings.Contains(r, tc.card.Info.CF) {
					t.Errorf("receipt holds the operator's serial, the document or the CF: %s", r)
				}
			} else if len(rs) != tc.prints {
				t.Fatalf("%d receipts", len(rs))
			}
			lb.AssertNoPII(t, tc.card.Info.CF, tc.card.Info.Surname, "CA12345AB", opSerial)
			d.reader.Remove()
			d.wait(ctx, "Inserire la TS del")
			d.panel.Press(hal.KeyCancel) // logout
			d.wait(ctx, "Inserire la tessera")
		})
	}
}

// The operator types the operator card's PIN, not "the card's PIN" a
// citizen is asked for.
func TestOperatorPINPrompt(t *testing.T) {
	ctx := ctxT(t)
	d := startDesk(t, true)
	d.reader.Insert(sim.OperatorCard())
	d.wait(ctx, "PIN carta operatore")
	if s := d.panel.Text(); strings.Contains(s, "della tessera") {
		t.Fatalf("operator prompt %q", s)
	}
	d.panel.Press(hal.KeyCancel)
	d.wait(ctx, "Operazione annullata")
	d.remove(ctx)
	d.reader.Insert(testCard())
	d.run(ctx, []step{{"1 Consensi FSE", "1"}, {"della tessera", ""}})
	if s := d.panel.Text(); strings.Contains(s, "operatore") {
		t.Fatalf("citizen prompt %q", s)
	}
}

// ops returns the desk's newest outbox entries (up to 5) without the
// lookups, and how many lookups there were.
func (d *desk) ops() (ops []outbox.Entry, lookups int) {
	all, _ := d.box.Recent(5)
	return withoutLookups(all)
}

// withoutLookups drops the second identity checks (cms.KindLookup) from
// entries, and lookups counts them.
func withoutLookups(entries []outbox.Entry) (ops []outbox.Entry, lookups int) {
	for _, e := range entries {
		if e.Kind == cms.KindLookup {
			lookups++
			continue
		}
		ops = append(ops, e)
	}
	return ops, lookups
}

// auditWithoutLookups drops the second identity checks from audit.
func auditWithoutLookups(audit []refcms.AuditRecord) []refcms.AuditRecord {
	var out []refcms.AuditRecord
	for _, a := range audit {
		if a.Kind != cms.KindLookup {
			out = append(out, a)
		}
	}
	return out
}

// A refusal is shown whole, a page at a time (two rows cut it), and its
// receipt gives the reason in words, without the CMS's internal code and
// without sending the citizen to collect a reader (issue 17).
func TestRejectionShownWhole(t *testing.T) {
	ctx := ctxT(t)
	d := startDeskOpts(t, localOpts{online: func() bool { return true }, resultWait: 10 * time.Second})
	d.reader.Insert(testCard())
	d.run(ctx, []step{{"2 Richiesta lettore", "2"}, {"n. ricevuta", "420042#"}, {"#=Conferma", "#"}, {"Accolta. Protocollo:", "#"},
		{"2 Richiesta lettore", "2"}, {"n. ricevuta", "420042#"}, {"#=Conferma", "#"}})
	d.wait(ctx, "Operazione")
	var shown []string
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatalf("no last page: %q", shown)
		}
		s := d.panel.Text()
		shown = append(shown, s)
		if strings.Contains(s, "#=Menu") {
			break
		}
		d.panel.Press(hal.KeyOK)
		d.waitChange(ctx, s)
	}
	all := strings.Join(strings.Fields(strings.Join(shown, " ")), " ")
	for _, w := range []string{"Questa ricevuta di", "pagamento è già", "stata usata per un", "lettore."} {
		if !strings.Contains(all, w) {
			t.Errorf("the refusal shown lacks %q: %s", w, all)
		}
	}
	d.panel.Press(hal.KeyOK) // back to the menu, the session still open
	d.wait(ctx, "1 Consensi FSE")
	got, err := d.printer.WaitReceipts(ctx, 2)
	if err != nil {
		t.Fatalf("no receipt of the refusal: %v", err)
	}
	r := strings.Join(strings.Fields(got[1]), " ")
	if strings.Contains(r, "PAYMENT_REUSED") || strings.Contains(r, "ritiro del lettore") ||
		!strings.Contains(r, "Motivo: Questa ricevuta di pagamento è già stata usata per un lettore.") || !strings.Contains(r, "Esito: RESPINTA") {
		t.Errorf("receipt of the refusal: %s", r)
	}
}

// In an operator session too, # on an outcome offers the citizen's menu
// again (the hint is not a lie there either).
func TestAssistedAnotherOperation(t *testing.T) {
	ctx := ctxT(t)
	d := startDeskOpts(t, localOpts{online: func() bool { return true }, resultWait: 10 * time.Second})
	d.login(ctx)
	d.reader.Insert(testCard())
	d.run(ctx, cat([]step{{"1 Attivazione", "#"}, {"6 Lettore", "6"}}, docSteps,
		[]step{{"n. ricevuta", "420042#"}, {"#=Conferma", "#"}, {"#=Altra operazione", "#"}}))
	d.wait(ctx, "1 Attivazione")
	d.panel.Press(hal.KeyCancel)
	d.wait(ctx, "Rimuovere la")
}
