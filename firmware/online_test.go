package firmware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

func offline() bool { return false }

// Offline, an operation that needs the CMS's answer is refused at once:
// no PIN asked, nothing queued, nothing printed; a key goes back to the
// menu, where an operation that works offline is served in the same
// session.
func TestOnlineOpsOffline(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []hal.Key
	}{
		{"history", []hal.Key{'#', '4'}},
		{"reprint", []hal.Key{'#', '5'}},
		{"history from the first page", []hal.Key{'4'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			l := startLocalWith(t, time.Minute, offline)
			l.insert(ctx, testCard())
			for _, k := range tc.keys {
				l.panel.Press(k)
			}
			l.wait(ctx, "disponibile ora")
			if s := l.panel.Text(); !strings.Contains(s, "Servizio non") || !strings.Contains(s, "riprovare più tardi") {
				t.Fatalf("screen %q", s)
			}
			if q, _ := l.box.Stats(); q.LastSeq != 0 || q.Depth != 0 {
				t.Fatalf("offline online-op queued something: %+v", q)
			}
			l.panel.Press(hal.KeyOK) // back to the menu, not a dead screen
			l.run(ctx, pinChangeSteps(testPIN, "24681357"))
			l.wait(ctx, "Salvata: l'esito")
			if q, _ := l.box.Stats(); q.LastSeq != 1 {
				t.Fatalf("the offline-capable op after the refusal: %+v", q)
			}
			l.remove(ctx)
			l.receipts(ctx, 1)
			if r := l.printedAll(ctx); len(r) != 1 {
				t.Fatalf("%d receipts, want only the Cambio PIN's", len(r))
			}
		})
	}
	// Queueable operations still work offline.
	ctx := ctxT(t)
	l := startLocalWith(t, time.Minute, offline)
	l.consentFlow(ctx)
	l.wait(ctx, "Salvata: l'esito")
}

// Online but the answer does not come: the citizen is told, may leave,
// and nothing is printed for an absent citizen.
func TestOnlineOpLate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(l *local)
		want  string
	}{
		{"D", func(l *local) { l.panel.Press(hal.KeyCancel) }, "Risposta non giunta"},
		{"card out", func(l *local) { l.reader.Remove() }, "Inserire la tessera"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			l := startLocalWith(t, time.Minute, func() bool { return true })
			l.insert(ctx, testCard())
			l.panel.Press(hal.KeyOK)
			l.run(ctx, []step{{"5 Ristampa PIN/PUK", "5"}, {"1 Codici dimenticati", "1"},
				{"seconde metà a:", "#"}}) // the summary, confirmed before anything is sent
			l.wait(ctx, "Risposta in ritardo")
			q, _ := l.box.Stats()
			if q.LastSeq != 1 {
				t.Fatalf("queue %+v", q)
			}
			e, err := l.box.Recent(1)
			if err != nil || len(e) != 1 || e[0].Kind != cms.KindReprint || e[0].Expires.Sub(e[0].Created) > 2*time.Minute {
				t.Fatalf("entry %+v, %v: want a reprint with a short expiry", e, err)
			}
			tc.leave(l)
			l.wait(ctx, tc.want)
			l.reader.Remove()                  // (again, for "card out")
			l.wait(ctx, "Inserire la tessera") // the session over, all it queued is in the print queue
			l.noReceiptQueued("for an unanswered op")
			if n := len(l.printer.Receipts()); n != 0 {
				t.Fatalf("%d receipts for an unanswered op", n)
			}
		})
	}
}

// The requests the totem refuses say what to do instead, then go back to
// the menu; nothing is queued.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		key     hal.Key
		counter bool // the totem stands at a counter enabled to reissue
		pages   []string
	}{
		{'1', false, []string{"Le CNS non possono", "si chiede la revoca, qui al totem"}},
		{'2', false, []string{"La riemissione", "abilitati"}},
		{'2', true, []string{"Questo sportello è", "chiede a un operatore", "genitore o il tutore"}},
		// 3, Dati errati, is reported: TestWrongData.
	} {
		t.Run(fmt.Sprintf("%c counter=%v", tc.key, tc.counter), func(t *testing.T) {
			ctx := ctxT(t)
			l := startLocalOpts(t, localOpts{reissueCounter: tc.counter})
			l.insert(ctx, testCard())
			for _, want := range []string{"4 Storico", "7 Revoca tessera", "0 Sospensione,"} {
				l.panel.Press(hal.KeyOK) // the next page of the menu
				l.wait(ctx, want)
			}
			l.panel.Press('0')
			l.run(ctx, []step{{"1 Sospensione", string(tc.key)}})
			l.wait(ctx, tc.pages[0])
			mustContain(t, "pages", readPages(ctx, t, l.totem), tc.pages...)
			l.panel.Press(hal.KeyOK)
			l.wait(ctx, "1 Consensi FSE")
			if q, _ := l.box.Stats(); q.LastSeq != 0 {
				t.Fatalf("a refusal queued an operation: %+v", q)
			}
		})
	}
}

// Storico through the real hub: after a consent, the history shows the
// demo card and, printed, the consent with its protocol number.
func TestHistoryEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 40*time.Second)
	tt.consentFlow(ctx)
	tt.wait(ctx, "Accolta. Protocollo:")
	rec, err := c.CMS.Consents("6090012345678000")
	if err != nil {
		t.Fatal(err)
	}
	tt.remove(ctx)

	tt.insert(ctx, testCard())
	tt.panel.Press(hal.KeyOK)
	tt.run(ctx, []step{{"4 Storico", "4"}, {"PIN:", testPIN + "#"}, {"1 Tutte le tessere", "1"}})
	// The cards and their operations on screen, two lines a page, dates
	// as on the receipt (issue 17); # turns the pages, 1 prints.
	tt.wait(ctx, "Storico 1/")
	for _, want := range []string{"Tessera attiva", "N. ************8000"} {
		if s := tt.panel.Text(); !strings.Contains(s, want) {
			t.Fatalf("screen lacks %q:\n%s", want, s)
		}
	}
	var shown []string
	for i := 0; !strings.Contains(tt.panel.Text(), "#=Menu"); i++ {
		if i > 5 {
			t.Fatalf("no last page: %q", shown)
		}
		s := tt.panel.Text()
		shown = append(shown, s)
		tt.panel.Press(hal.KeyOK)
		tt.waitChange(ctx, s)
	}
	all := flat(append(shown, tt.panel.Text())...)
	for _, want := range []string{"Scadenza 31/12/2030", time.Now().Format("02/01/2006") + " Consensi FSE"} {
		if !strings.Contains(all, want) {
			t.Fatalf("the pages lack %q: %s", want, all)
		}
	}
	if n := len(tt.printer.Receipts()); n != 1 {
		t.Fatalf("the Storico printed unasked: %d receipts", n)
	}
	tt.panel.Press('1') // print it
	tt.wait(ctx, "Storico stampato")
	receipts := tt.printer.Receipts()
	if len(receipts) != 2 {
		t.Fatalf("%d receipts", len(receipts))
	}
	r := flat(receipts[1])
	mustContain(t, "receipt", r, "Storico tessera", "Tessera ************8000", "Scadenza 31/12/2030 - attiva",
		"Consensi FSE prot. "+rec.Protocol, "Estratto dell'archivio, riferimento")
	mustNotContain(t, "receipt", r, "6090012345678000", "RSSMRA80A01H501U", "ROSSI", testPIN, "ACCOLTA")
	entries, _ := tt.box.Recent(1)
	if len(entries) != 1 || entries[0].Kind != cms.KindHistory || entries[0].Expires.Sub(entries[0].Created) > 2*time.Minute {
		t.Fatalf("history entry %+v", entries)
	}
	finishE2E(t, c, tt, lb)
}

// Ristampa PIN/PUK through the real hub: no PIN asked, the first halves
// printed, the second halves sent by the CMS; a revoked card is refused
// with the CMS's Italian reason and nothing printed.
func TestReprintEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 40*time.Second)

	tt.insert(ctx, testCard())
	tt.panel.Press('5')                               // reachable from the first page too
	tt.run(ctx, []step{{"1 Codici dimenticati", "1"}, // no PIN: it may be what was forgotten
		{"recapito in archivio", "#"}})
	tt.wait(ctx, "Accolta. Protocollo:")
	entries, _ := tt.box.Recent(1)
	if len(entries) != 1 || entries[0].Kind != cms.KindReprint || !entries[0].Done {
		t.Fatalf("reprint entry %+v", entries)
	}
	var res cms.ReprintResult
	if err := json.Unmarshal(entries[0].Result.Data, &res); err != nil || res.PINFirstHalf == "" || res.PUKFirstHalf == "" {
		t.Fatalf("result %+v, %v", res, err)
	}
	mustContain(t, "receipt", flat(tt.printer.Receipts()...), "Ristampa PIN/PUK", "Motivo: PIN o PUK dimenticato",
		"Prima metà del PIN: "+res.PINFirstHalf, "Prima metà del PUK: "+res.PUKFirstHalf,
		"Le seconde metà saranno inviate a: SMS *********0001", "Esito: ACCOLTA")
	notes, err := c.CMS.Notifications("6090012345678000")
	if err != nil || len(notes) != 1 || notes[0].Kind != cms.KindReprint || notes[0].OpID != entries[0].ID {
		t.Fatalf("notifications %+v, %v", notes, err)
	}
	if strings.Contains(lb.String(), res.PINFirstHalf+res.PUKFirstHalf) {
		t.Error("codes in the logs")
	}
	tt.remove(ctx)

	// A revoked card: the CMS refuses, the totem says why, prints nothing.
	tt.insert(ctx, revokedCard())
	tt.panel.Press(hal.KeyOK)
	tt.run(ctx, []step{{"5 Ristampa PIN/PUK", "5"}, {"4 PIN/PUK bloccati", "4"}, {"Codici bloccati", "#"}})
	tt.wait(ctx, "Operazione")
	tt.wait(ctx, "rifiutata")
	if text := readPages(ctx, t, tt); !strings.Contains(text, "La tessera è revocata.") {
		t.Fatalf("reason not shown: %s", text)
	}
	if n := len(tt.printer.Receipts()); n != 1 {
		t.Fatalf("%d receipts after a refused reprint", n)
	}
	finishE2E(t, c, tt, lb)
}

// readPages pages through a long text with # up to its last page and
// returns all of it, one line.
func readPages(ctx context.Context, t *testing.T, tt *totem) string {
	t.Helper()
	var all []string
	for i := 0; ; i++ {
		s := tt.panel.Text()
		rows := strings.Split(s, "\n")
		all = append(all, rows[:len(rows)-1]...)
		if strings.Contains(s, "#=Menu") {
			return strings.Join(strings.Fields(strings.Join(all, " ")), " ")
		}
		if !strings.Contains(s, "#=Avanti") || i > 20 {
			t.Fatalf("not a page: %q", s)
		}
		tt.panel.Press(hal.KeyOK)
		tt.waitChange(ctx, s)
	}
}
