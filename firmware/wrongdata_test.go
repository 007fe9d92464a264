package firmware_test

import (
	"context"
	"encoding/json"
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

// wrongDataSteps report the wrong birth data from the menu, in Italian
// (en false) or in English.
func wrongDataSteps(en bool) []step {
	if en {
		return []step{{"1 FSE consents", "0"}, {"3 Wrong data", "3"}, {"1 Name or surname", "2"}}
	}
	return []step{{"1 Consensi FSE", "0"}, {"3 Dati errati", "3"}, {"1 Nome o cognome", "2"}}
}

// wrongDataFlow reports the wrong birth data of card from the menu.
func wrongDataFlow(ctx context.Context, tt *totem, card *sim.Card) {
	tt.t.Helper()
	tt.reader.Insert(card)
	tt.run(ctx, wrongDataSteps(false))
}

// Dati errati offline: the report is queued with a provisional receipt,
// and the citizen is sent to the sportello Scelta e Revoca.
func TestWrongDataOffline(t *testing.T) {
	ctx := ctxT(t)
	l := startLocalWith(t, time.Minute, offline)
	wrongDataFlow(ctx, l.totem, testCard())
	l.wait(ctx, "Segnalazione")
	mustContain(t, "pages", readPages(ctx, t, l.totem), "Segnalazione salvata sul totem (ricevuta provvisoria)", "I dati anagrafici", "Scelta e Revoca")
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
	mustContain(t, "receipt", flat(l.printer.Receipts()[0]), "Segnalazione dati errati", "RICEVUTA PROVVISORIA", "sportello Scelta e Revoca")
}

// A citizen in English gets the receipt of a report in English: the
// flows pass the session's frame to the lines (issue 17 item 12).
func TestWrongDataReceiptEnglish(t *testing.T) {
	ctx := ctxT(t)
	l := startLocalOpts(t, localOpts{online: offline, lang: firmware.EN})
	l.reader.Insert(testCard())
	l.run(ctx, wrongDataSteps(true))
	l.receipts(ctx, 1)
	r := flat(l.printer.Receipts()[0])
	mustContain(t, "receipt", r, "PROVISIONAL RECEIPT", "The report has been recorded.", "registry office (Scelta e Revoca) of your ASL")
	if strings.Contains(r, "segnalazione è stata registrata") {
		t.Errorf("receipt in Italian: %s", r)
	}
}

// Dati errati through the hub: the CMS records the report (the card is
// marked, the history has it) and answers with a protocol number; for a
// revoked card it refuses, and the citizen reads why and where to go.
func TestWrongDataEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 40*time.Second)

	wrongDataFlow(ctx, tt, testCard())
	tt.wait(ctx, "Segnalazione")
	text := readPages(ctx, t, tt)
	entries, _ := tt.box.Recent(1)
	if len(entries) != 1 || !entries[0].Done || entries[0].Result.Processing.Status == protocol.ProcessingRejected {
		t.Fatalf("entry %+v", entries)
	}
	mustContain(t, "pages", text, "Segnalazione registrata, protocollo "+entries[0].Result.Transport.Protocol, "Scelta e Revoca")
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
	tt.remove(ctx)

	wrongDataFlow(ctx, tt, revokedCard())
	tt.wait(ctx, "Segnalazione")
	mustContain(t, "pages", readPages(ctx, t, tt), "Segnalazione non registrata: La tessera è revocata.", "Scelta e Revoca")
	finishE2E(t, c, tt, lb)
}
