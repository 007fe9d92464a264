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
	for _, want := range []string{"Codice fiscale: RSS**********01U", "Identificativo locale: demo-01-000007", "TOTEM|demo-01|L:demo-01-000007", "riga"} {
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
		Events: []cms.HistoryEvent{{Kind: cms.KindConsent, Protocol: "P1"}}}}}, func(k string) string { return "T:" + k })
	if got := strings.Join(lines, "\n"); !strings.Contains(got, "T:consent prot. P1") || !strings.Contains(got, "************8000") {
		t.Errorf("history lines:\n%s", got)
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
