package receipts

import (
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
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
