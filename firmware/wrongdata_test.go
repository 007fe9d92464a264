package firmware_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/protocol"
)

// wrongDataFlow reports the wrong birth data of card from the menu.
func wrongDataFlow(ctx context.Context, tt *totem, card *sim.Card) {
	tt.t.Helper()
	tt.reader.Insert(card)
	tt.wait(ctx, "1 Consensi FSE")
	tt.panel.Press('0')
	tt.wait(ctx, "3 Dati errati")
	tt.panel.Press('3')
	tt.wait(ctx, "1 Nome o cognome")
	tt.panel.Press('2')
}

// Dati errati offline: the report is queued with a provisional receipt,
// and the citizen is sent to the sportello Scelta e Revoca.
func TestWrongDataOffline(t *testing.T) {
	ctx := ctxT(t)
	l := startLocalWith(t, time.Minute, offline)
	wrongDataFlow(ctx, l.totem, testCard())
	l.wait(ctx, "Segnalazione")
	text := readPages(ctx, t, l.totem)
	for _, want := range []string{"Segnalazione salvata sul totem (ricevuta provvisoria)", "I dati anagrafici", "Scelta e Revoca"} {
		if !strings.Contains(text, want) {
			t.Errorf("pages lack %q: %s", want, text)
		}
	}
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "1 Consensi FSE")
	pend, _ := l.box.Pending(0, 10)
	if len(pend) != 1 || pend[0].Kind != cms.KindWrongData {
		t.Fatalf("pending %+v", pend)
	}
	var rep cms.WrongDataReport
	if err := json.Unmarshal(pend[0].Payload, &rep); err != nil || rep.Channel != cms.SelfService ||
		!slices.Equal(rep.Fields, []string{"data_nascita", "luogo_nascita", "sesso"}) || rep.Card.Serial != "6090012345678000" {
		t.Fatalf("report %+v, %v", rep, err)
	}
	l.receipts(ctx, 1)
	r := strings.Join(strings.Fields(l.printer.Receipts()[0]), " ")
	for _, want := range []string{"Segnalazione dati errati", "RICEVUTA PROVVISORIA", "sportello Scelta e Revoca"} {
		if !strings.Contains(r, want) {
			t.Errorf("receipt lacks %q: %s", want, r)
		}
	}
}

// A citizen in English gets the receipt of a report in English: the
// flows pass the session's frame to the lines (issue 17 item 12).
func TestWrongDataReceiptEnglish(t *testing.T) {
	ctx := ctxT(t)
	l := startLocalOpts(t, localOpts{online: offline, lang: firmware.EN})
	l.reader.Insert(testCard())
	l.wait(ctx, "1 FSE consents")
	l.panel.Press('0')
	l.wait(ctx, "3 Wrong data")
	l.panel.Press('3')
	l.wait(ctx, "1 Name or surname")
	l.panel.Press('2')
	l.receipts(ctx, 1)
	r := strings.Join(strings.Fields(l.printer.Receipts()[0]), " ")
	for _, want := range []string{"PROVISIONAL RECEIPT", "The report has been recorded.", "registry office (Scelta e Revoca) of your ASL"} {
		if !strings.Contains(r, want) {
			t.Errorf("receipt lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r, "segnalazione è stata registrata") {
		t.Errorf("receipt in Italian: %s", r)
	}
}

// Dati errati through the hub: the CMS records the report (the card is
// marked, the history has it) and answers with a protocol number; for a
// revoked card it refuses, and the citizen reads why and where to go.
func TestWrongDataEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	dir := t.TempDir()
	lb, log := newLog()
	c := startBroker(t, dir, log, "127.0.0.1:0")
	c.startHub()
	tt := startTotem(t, filepath.Join(dir, "totem"), c.URL(), c.totem, log)

	wrongDataFlow(ctx, tt, testCard())
	tt.wait(ctx, "Segnalazione")
	text := readPages(ctx, t, tt)
	entries, _ := tt.box.Recent(1)
	if len(entries) != 1 || !entries[0].Done || entries[0].Result.Processing.Status == protocol.ProcessingRejected {
		t.Fatalf("entry %+v", entries)
	}
	for _, want := range []string{"Segnalazione registrata, protocollo " + entries[0].Result.Transport.Protocol, "Scelta e Revoca"} {
		if !strings.Contains(text, want) {
			t.Errorf("pages lack %q: %s", want, text)
		}
	}
	card, err := c.CMS.Card("6090012345678000")
	if err != nil || !card.DataReported {
		t.Fatalf("card %+v, %v", card, err)
	}
	hist, _ := c.CMS.History("6090012345678000")
	if len(hist) == 0 || hist[len(hist)-1].Kind != cms.KindWrongData || hist[len(hist)-1].Detail != "data_nascita,luogo_nascita,sesso" {
		t.Fatalf("history %+v", hist)
	}
	tt.panel.Press(hal.KeyOK)
	tt.wait(ctx, "1 Consensi FSE")
	tt.reader.Remove()
	tt.wait(ctx, "Inserire la tessera")

	revoked := testCard()
	revoked.Info.Serial, revoked.Info.CF = "6090098765432002", "BNCLRA75D45F205C"
	revoked.Info.Expiry = time.Date(2029, 6, 30, 0, 0, 0, 0, time.UTC)
	wrongDataFlow(ctx, tt, revoked)
	tt.wait(ctx, "Segnalazione")
	text = readPages(ctx, t, tt)
	for _, want := range []string{"Segnalazione non registrata: La tessera è revocata.", "Scelta e Revoca"} {
		if !strings.Contains(text, want) {
			t.Errorf("pages lack %q: %s", want, text)
		}
	}
	tt.stop()
	c.stop()
	checkLogs(t, lb)
}
