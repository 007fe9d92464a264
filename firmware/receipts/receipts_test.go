package receipts

import (
	"strings"
	"testing"
	"time"

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
	lines := History(cms.HistoryResult{Cards: []cms.CardHistory{{Serial: "6090012345678000", Expiry: "2030-12-31", State: cms.CardActive,
		Events: []cms.HistoryEvent{{Kind: cms.KindConsent, Protocol: "P1"}}}}}, func(k string) string { return "T:" + k }, nil)
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
	got := text(f.Receipt(acc, "T", hal.CardInfo{}, Revocation(cms.RevocationResult{RevokedAt: at}, rome)))
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
	d := Frame{Totem: "demo-01"}.Receipt(rej, "Richiesta lettore", hal.CardInfo{}, ReaderRejected("420042"))
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
	codes := strings.Join(Activation(cms.ActivationResult{PINFirstHalf: "4711", PUKFirstHalf: "9021", CIP: "82736451"}), "\n")
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
