package receipts

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// The frame masks the CF and gives a provisional receipt the local id in
// text and QR; the byte-exact layouts are firmware's golden files.
func TestFrame(t *testing.T) {
	f := Frame{ASL: "ASL", Totem: "demo-01", Location: "Atrio", Now: time.Date(2026, 11, 23, 17, 5, 0, 0, time.Local)}
	d := f.Receipt(outbox.Entry{Seq: 7}, "Titolo", hal.CardInfo{CF: "RSSMRA80A01H501U"}, []string{"riga"})
	var all []string
	for _, b := range d.Blocks {
		all = append(all, b.Text)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"Codice fiscale: RSS**********01U", "Identificativo locale: demo-01-000007", "Identificativo locale demo-01-000007", "riga"} {
		if !strings.Contains(text, want) {
			t.Errorf("receipt lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "RSSMRA80A01H501U") {
		t.Error("receipt shows the whole CF")
	}
}

// The Storico names events through the caller's titles.
func TestHistoryTitles(t *testing.T) {
	lines := Frame{}.History(cms.HistoryResult{Cards: []cms.CardHistory{{Serial: "6090012345678000", Expiry: "2030-12-31", State: cms.CardActive,
		Events: []cms.HistoryEvent{{Kind: cms.KindConsent, Protocol: "P1"}}}}}, func(k string) string { return "T:" + k })
	if got := strings.Join(lines, "\n"); !strings.Contains(got, "T:consent prot. P1") || !strings.Contains(got, "************8000") {
		t.Errorf("history lines:\n%s", got)
	}
}

// Times are printed in the frame's zone (Europe/Rome for a totem whose
// host clock is UTC), and the QR carries what a phone can use: the
// protocol number as text, or the ASL's link with it.
func TestFrameZoneAndQR(t *testing.T) {
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	acc := outbox.Entry{Seq: 7, Done: true, Result: &protocol.Result{Transport: protocol.Transport{Protocol: "261123000000042"},
		Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}}
	at := time.Date(2026, 7, 1, 15, 5, 0, 0, time.UTC)
	f := Frame{Totem: "demo-01", Now: at, Zone: rome}
	text := func(d *hal.Doc) string {
		var all []string
		for _, b := range d.Blocks {
			all = append(all, b.Text)
		}
		return strings.Join(all, "\n")
	}
	got := text(f.Receipt(acc, "T", hal.CardInfo{}, f.Revocation(cms.RevocationResult{RevokedAt: at})))
	for _, want := range []string{"Data: 01/07/2026 17:05", "Tessera revocata il: 01/07/2026 17:05", "\nProtocollo 261123000000042\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("receipt lacks %q:\n%s", want, got)
		}
	}
	f.Link = "https://asl.example/esito?p={protocollo}"
	if got := text(f.Receipt(acc, "T", hal.CardInfo{}, nil)); !strings.Contains(got, "\nhttps://asl.example/esito?p=261123000000042\n") {
		t.Errorf("QR with the ASL's link:\n%s", got)
	}
}

// A refused operation's receipt says why in words, without the CMS's
// internal code, and what to do; a refused reader request does not send
// the citizen to collect a reader.
func TestRejectedReceipt(t *testing.T) {
	rej := outbox.Entry{Seq: 7, Done: true, Result: &protocol.Result{Transport: protocol.Transport{Protocol: "261123000000043"},
		Processing: protocol.Processing{Status: protocol.ProcessingRejected,
			Errors: []protocol.Error{{Code: "PAYMENT_REUSED", Message: "Questa ricevuta di pagamento è già stata usata."}}}}}
	d := Frame{Totem: "demo-01"}.Receipt(rej, "Richiesta lettore", hal.CardInfo{}, Frame{}.ReaderRejected("420042"))
	var all []string
	for _, b := range d.Blocks {
		all = append(all, b.Text)
	}
	got := strings.Join(all, "\n")
	if strings.Contains(got, "PAYMENT_REUSED") || strings.Contains(got, "ritiro del lettore") ||
		!strings.Contains(got, "Motivo: Questa ricevuta di pagamento è già stata usata per un lettore.") || !strings.Contains(got, "rivolgersi allo sportello") {
		t.Errorf("rejected receipt:\n%s", got)
	}
}

// The acceptance form carries no code and is signed by the delegate for a
// minor, in the ASL's town; the codes are on their own sheet, unsigned;
// the declaration says "responsabilità genitoriale" (issue 17, item 19).
func TestAcceptanceForm(t *testing.T) {
	f := Frame{Town: "Lucca", Location: "Atrio principale", Now: time.Date(2026, 11, 23, 17, 5, 0, 0, time.Local)}
	deleg := &cms.Delegation{Kind: cms.DelegParental, Name: "ROSSI MARIO", CF: "RSSMRA80A01H501U"}
	req := &cms.ActivationRequest{Operator: "8090000000042006", Delegate: deleg, Document: cms.IDDocument{Type: cms.DocIdentityCard}}
	form := strings.Join(f.Acceptance(req), "\n")
	for _, want := range []string{"Lucca, 23/11/2026", "Firma del genitore (responsabilità genitoriale)", "prime metà di PIN e PUK"} {
		if !strings.Contains(form, want) {
			t.Errorf("acceptance form lacks %q:\n%s", want, form)
		}
	}
	if strings.Contains(form, "Atrio") || strings.Contains(form, "titolare:") {
		t.Errorf("acceptance form:\n%s", form)
	}
	req.Delegate = nil
	if form := strings.Join(f.Acceptance(req), "\n"); !strings.Contains(form, "Firma del titolare") {
		t.Errorf("direct acceptance form:\n%s", form)
	}
	codes := strings.Join(f.Activation(cms.ActivationResult{PINFirstHalf: "4711", PUKFirstHalf: "9021", CIP: "82736451"}), "\n")
	if strings.Contains(codes, "Firma") || !strings.Contains(codes, "82736451") {
		t.Errorf("codes sheet:\n%s", codes)
	}
	var decl []string
	for _, b := range f.Declaration(hal.CardInfo{}, *deleg, cms.IDDocument{}).Blocks {
		decl = append(decl, b.Text)
	}
	if d := strings.Join(decl, "\n"); !strings.Contains(d, "responsabilità genitoriale") || !strings.Contains(d, "Lucca, 23/11/2026") || strings.Contains(d, "potestà") {
		t.Errorf("declaration:\n%s", d)
	}
}

// A refused operation's receipt gives the catalogue's text of each code
// in the citizen's language, a generic text for a code it does not know,
// and never the code nor the CMS's Italian message.
func TestRefusalInLanguage(t *testing.T) {
	e := outbox.Entry{Seq: 3, Done: true, Result: &protocol.Result{
		Transport: protocol.Transport{Status: protocol.TransportReceived, Protocol: "P-1"},
		Processing: protocol.Processing{Status: protocol.ProcessingRejected, Errors: []protocol.Error{
			{Code: cms.CodePaymentReused, Message: "Questa ricevuta di pagamento è già stata usata per un lettore."},
			{Code: "FUTURE_CODE", Message: "Messaggio interno"}}}}}
	for lang, wants := range map[screens.Lang][]string{
		screens.IT: {"Esito: RESPINTA", "Questa ricevuta di pagamento è già stata usata per un lettore.", "Operazione non accolta: rivolgersi allo sportello."},
		screens.EN: {"Outcome: REFUSED", "This payment receipt has already been used for a reader.", "The request was not accepted: please go to the counter.", "Keep this receipt."},
	} {
		d := Frame{Totem: "demo-01", Lang: lang}.Receipt(e, "Title", hal.CardInfo{}, nil)
		var all []string
		for _, b := range d.Blocks {
			all = append(all, b.Text)
		}
		text := strings.Join(all, "\n")
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%d: receipt lacks %q:\n%s", lang, want, text)
			}
		}
		for _, never := range []string{"PAYMENT_REUSED", "FUTURE_CODE", "Messaggio interno"} {
			if strings.Contains(text, never) {
				t.Errorf("%d: receipt shows %q:\n%s", lang, never, text)
			}
		}
	}
}

// italianOnly are words an English receipt must not show: Italian words
// with no English twin (the codice fiscale, the ASL's "Scelta e Revoca"
// office and the acronyms FSE, TS-CNS, PIN, PUK, CIP, TEAM are names,
// the same in both).
var italianOnly = []string{"tessera", "ricevuta", "codici", "motivo", "richiesta", "pagamento", "sportello",
	"operatore", "documento", "delega", "delegato", "rimborso", "scadenza", "metà", "prima", "seconde", "inviate",
	"lettore", "lettori", "fascicolo", "revocata", "nuova", "segnalazione", "registrata", "registrati", "conservare",
	"presentare", "rivolgersi", "dichiarazione", "titolare", "carta", "prot", "annullata", "tentativi", "ogni",
	"minuti", "minuto", "ore", "ora", "secondi", "il", "la", "del", "della", "dal", "di", "per", "con", "è", "sarà",
	"non", "alla", "emessa", "attiva", "furto", "smarrimento", "malfunzionamento", "consensi", "politica", "attivo"}

// italianWords are the words of italianOnly in s.
func italianWords(s string) []string {
	var found []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if slices.Contains(italianOnly, w) && !slices.Contains(found, w) {
			found = append(found, w)
		}
	}
	return found
}

// Every per-operation builder, in English, prints no Italian word (issue
// 17 item 12: the receipts follow the citizen's language), and the same
// builder in Italian does (the list catches what it should).
func TestLinesFollowLanguage(t *testing.T) {
	at := time.Date(2026, 11, 23, 17, 5, 0, 0, time.UTC)
	doc := cms.IDDocument{Type: cms.DocIdentityCard}
	deleg := &cms.Delegation{Kind: cms.DelegParental, CF: "RSSMRA80A01H501U"}
	act := &cms.ActivationRequest{Operator: "8090000000042006", Delegate: deleg, Declaration: true, Document: doc,
		Reader: &cms.Payment{Reference: "420042"}, Consents: &cms.ConsentSet{Policy: "fse-2020"}}
	res := cms.ActivationResult{PINFirstHalf: "4711", PUKFirstHalf: "9021", CIP: "82736451", SecondHalvesTo: "SMS ********4567",
		Readers: 1, FSE: cms.FSECreated, FSEDetail: &cms.ConsentResult{FSE: cms.FSETicket, Ticket: "HD1-1", TicketLevel: 1}}
	revoked := cms.RevocationResult{RevokedAt: at, Reason: cms.ReasonTheft, Reissue: "R-1"}
	builders := map[string]func(f Frame) []string{
		"activation": func(f Frame) []string { return f.Activation(res) },
		"activation-summary": func(f Frame) []string {
			return f.ActivationSummary(act, res)
		},
		"revocation":          func(f Frame) []string { return f.Revocation(revoked) },
		"revocation-assisted": func(f Frame) []string { return f.RevocationAssisted(revoked, deleg, doc, "8090000000042006") },
		"self-revocation":     func(f Frame) []string { return f.SelfRevocation("80380000900123456782", revoked) },
		"reader":              func(f Frame) []string { return f.Reader("PAG-1", cms.ReaderResult{Readers: 2}) },
		"reader-rejected":     func(f Frame) []string { return f.ReaderRejected("PAG-1") },
		"refund":              func(f Frame) []string { return f.Refund("P0", "PAG-1", cms.RefundResult{Cancellation: "P1"}) },
		"refund-provisional":  func(f Frame) []string { return f.Refund("", "PAG-1", cms.RefundResult{}) },
		"history": func(f Frame) []string {
			return f.History(cms.HistoryResult{Cards: []cms.CardHistory{
				{Serial: "6090012345678000", Expiry: "2030-12-31", State: cms.CardActive, Events: []cms.HistoryEvent{{At: at, Kind: "k", Protocol: "P1"}}},
				{Serial: "6090011111111001", Expiry: "2024-12-31", State: cms.CardRevoked},
				{Serial: "6090011111111002", Expiry: "2034-12-31", State: cms.CardIssued}}}, func(string) string { return "Title" })
		},
		"pin-change":  func(f Frame) []string { return f.PINEvent(cms.KindPINChange) },
		"pin-unblock": func(f Frame) []string { return f.PINEvent(cms.KindPINUnblock) },
		"wrong-data":  func(f Frame) []string { return f.WrongData() },
		"declared":    func(f Frame) []string { return []string{f.Declared()} },
		"codes-title": func(f Frame) []string { return []string{f.CodesTitle()} },
		"fse-created": func(f Frame) []string { return f.FSE(cms.ConsentResult{FSE: cms.FSECreated}) },
		"fse-pending": func(f Frame) []string {
			return append(f.FSE(cms.ConsentResult{FSE: cms.FSEPending, Retries: 5, RetryEvery: 60}),
				f.FSE(cms.ConsentResult{FSE: cms.FSEPending, Retries: 1, RetryEvery: 7200})...)
		},
		"fse-ticket-cf": func(f Frame) []string {
			return f.FSE(cms.ConsentResult{FSE: cms.FSETicket, Ticket: "HD1-1", TicketLevel: 1})
		},
		"fse-ticket-tech": func(f Frame) []string {
			return f.FSE(cms.ConsentResult{FSE: cms.FSETicket, Ticket: "HD2-1", TicketLevel: 2, Attempts: 5})
		},
		"requester-self": func(f Frame) []string { return f.Requester(nil, doc, "8090000000042006") },
	}
	for _, r := range []string{cms.ReasonTheft, cms.ReasonLoss, cms.ReasonMalfunction,
		cms.ReprintForgotten, cms.ReprintLost, cms.ReprintBlocked, cms.ReprintNotReceived} {
		builders["reprint-"+r] = func(f Frame) []string { return f.Reprint(r, cms.ReprintResult{PINFirstHalf: "4711"}) }
		builders["reissue-"+r] = func(f Frame) []string { return f.Reissue(r, cms.ReissueResult{Reissue: "R-1"}) }
	}
	for _, k := range []string{cms.DelegParental, cms.DelegTutor, cms.DelegCurator} {
		for _, d := range []string{cms.DocIdentityCard, cms.DocCIE, cms.DocLicence, cms.DocPassport} {
			builders["requester-"+k+"-"+d] = func(f Frame) []string {
				return f.Requester(&cms.Delegation{Kind: k, CF: "RSSMRA80A01H501U"}, cms.IDDocument{Type: d}, "8090000000042006")
			}
		}
	}
	for name, build := range builders {
		en := build(Frame{Lang: screens.EN})
		for _, l := range en {
			if w := italianWords(l); len(w) > 0 {
				t.Errorf("%s in English: %q has Italian %q", name, l, w)
			}
		}
		if text := strings.Join(en, "\n"); strings.TrimSpace(text) == "" || strings.Contains(text, "%!") {
			t.Errorf("%s in English: %q", name, text)
		}
		if it := strings.Join(build(Frame{}), "\n"); len(italianWords(it)) == 0 {
			t.Errorf("%s in Italian has no word of the list: %q", name, it)
		}
	}
	for key, t2 := range lineTexts {
		if t2[screens.IT] == "" || t2[screens.EN] == "" {
			t.Errorf("line text %q lacks a language: %q", key, t2)
		}
	}
}

// The documents to sign stay in Italian in an English session: the
// acceptance form's lines (legal documents, issue 17 item 12).
func TestAcceptanceStaysItalian(t *testing.T) {
	req := &cms.ActivationRequest{Operator: "8090000000042006", Delegate: &cms.Delegation{Kind: cms.DelegTutor, CF: "RSSMRA80A01H501U"},
		Document: cms.IDDocument{Type: cms.DocPassport}}
	en, it := Frame{Lang: screens.EN}.Acceptance(req), Frame{}.Acceptance(req)
	if !slices.Equal(en, it) {
		t.Errorf("acceptance form in English:\n%s", strings.Join(en, "\n"))
	}
}
