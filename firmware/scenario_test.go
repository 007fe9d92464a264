package firmware_test

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/drivers/term"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
)

// A scene is the whole system as a lobby sees it, with the parts a person
// would touch made as real as this machine allows: the card goes through
// pcscd and vpcd when they are installed (see scenario_pcsc_test.go) and
// through the simulated reader otherwise; receipts go through the ESC/POS
// driver over a pty to the virtual printer; the keypad and display are the
// terminal panel driver, fed keystroke bytes; the totem talks to the hub
// over the embedded broker, and the hub applies to the reference CMS.
type scene struct {
	t      *testing.T
	c      *central
	cards  sceneCards
	vp     *vprinter.VPrinter
	panel  *term.Panel
	keys   *io.PipeWriter
	box    *outbox.Outbox
	logs   *synctest.Log
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// sceneCards is the card slot of a scene: insert puts the named card (a
// vcard profile name) in, remove takes it out.
type sceneCards interface {
	reader() hal.CardReader
	insert(ctx context.Context, name string)
	remove(ctx context.Context)
	pin(name string) string
	close()
}

func startScene(t *testing.T) *scene { t.Helper(); return startSceneOpts(t, sceneOpts{}) }

// startSceneFor is startScene with a context that ends after timeout.
func startSceneFor(t *testing.T, timeout time.Duration) (*scene, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return startScene(t), ctx
}

// sceneOpts: a totem configured as standing at a counter enabled to
// reissue cards, and the totems the hub's fleet registry knows as such
// (nil: the hub runs without a registry).
type sceneOpts struct {
	totemCounter bool
	hubCounters  []string
}

func startSceneOpts(t *testing.T, o sceneOpts) *scene {
	t.Helper()
	dir := t.TempDir()
	lb, log := newLog()
	s := &scene{t: t, logs: lb}
	s.cards = newSceneCards(t, log) // first: pcsctest wants it before any other scard user
	s.c = startBroker(t, dir, log, "127.0.0.1:0")
	s.c.counters = o.hubCounters
	s.c.startHub()

	var err error
	if s.vp, err = vprinter.Start(filepath.Join(dir, "paper")); err != nil {
		t.Fatal(err)
	}
	prof, _ := escpos.ProfileByName("tm-t20")
	port, err := escpos.OpenSerial(s.vp.TTY(), prof.Baud)
	if err != nil {
		t.Fatal(err)
	}
	drv := escpos.New(port, prof, escpos.Options{StatusTimeout: 300 * time.Millisecond})
	if s.box, err = outbox.Open(filepath.Join(dir, "outbox.db"), nil); err != nil {
		t.Fatal(err)
	}
	in, keys := io.Pipe()
	s.keys = keys
	s.panel = term.New(in, io.Discard, term.Options{Cols: 20, Rows: 4})

	var app *firmware.App
	jobs, err := printq.Open(filepath.Join(dir, "jobs.db"), drv, printq.Options{Poll: 50 * time.Millisecond,
		Logger: log.With("subsystem", "printq"), OnStatus: func(err error) { app.PrinterStatus(err) }})
	if err != nil {
		t.Fatal(err)
	}
	app = firmware.New(firmware.Devices{Reader: s.cards.reader(), Printer: drv, Keypad: s.panel, Display: s.panel},
		firmware.Options{Totem: totemID, ASL: "ASL Test", Location: "Atrio", Outbox: s.box, Jobs: jobs,
			Logger: log.With("subsystem", "firmware"), ResultWait: 3 * time.Second, IdleTimeout: time.Minute,
			ReissueCounter: o.totemCounter})
	up := uplink.New(uplink.Options{Totem: totemID, URL: s.c.URL(), Username: s.c.totem.Username,
		Password: s.c.totem.Password, Outbox: s.box, Logger: log.With("subsystem", "uplink"),
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ResendAfter: time.Second,
		Telemetry: app.Telemetry, OnResult: app.Result, OnPolicy: app.SetPolicy, OnCommand: app.Command})

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.panel.Run(ctx) }()
	go func() { defer s.wg.Done(); app.Run(ctx) }()
	go func() { defer s.wg.Done(); up.Run(ctx) }()
	t.Cleanup(func() {
		s.stop()
		jobs.Close()
		s.box.Close()
		drv.Close()
		port.Close()
		s.vp.Close()
		s.cards.close()
	})
	return s
}

// stop stops the totem (the central side stays up).
func (s *scene) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.keys.Close() // ends the panel's pending read
	s.wg.Wait()
	s.cancel = nil
}

// press writes keystrokes as a terminal would: digits, A–D, * and #,
// "\r" for OK.
func (s *scene) press(keys string) {
	s.t.Helper()
	for i := 0; i < len(keys); i++ {
		if _, err := s.keys.Write([]byte{keys[i]}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// screen returns what the panel shows, one line per row.
func (s *scene) screen() string { return strings.Join(s.panel.Lines(), "\n") }

// wait waits until the panel shows substr and returns the screen.
func (s *scene) wait(ctx context.Context, substr string) string {
	s.t.Helper()
	for {
		if sc := s.screen(); strings.Contains(sc, substr) {
			return sc
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("the panel never showed %q; it shows:\n%s", substr, s.screen())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// receipts waits for n complete receipts from the virtual printer and
// returns their text, each folded to single spaces.
func (s *scene) receipts(ctx context.Context, n int) []string {
	s.t.Helper()
	rs, err := s.vp.WaitReceipts(ctx, n)
	if err != nil {
		s.t.Fatalf("receipts: %v (have %d)", err, len(s.vp.Receipts()))
	}
	var out []string
	for _, r := range rs {
		out = append(out, strings.Join(strings.Fields(r.Text(48)), " "))
	}
	return out
}

// audit returns the CMS's audit records about the operation id.
func (s *scene) audit(opID string) []refcms.AuditRecord {
	s.t.Helper()
	all, err := s.c.CMS.Audit()
	if err != nil {
		s.t.Fatal(err)
	}
	var out []refcms.AuditRecord
	for _, r := range all {
		if r.OpID == opID {
			out = append(out, r)
		}
	}
	return out
}

// last returns the newest outbox entry once it has its final result.
func (s *scene) last(ctx context.Context) outbox.Entry {
	s.t.Helper()
	var es []outbox.Entry
	haltest.Until(s.t, ctx, "the newest entry's final result", func() bool {
		var err error
		if es, err = s.box.Recent(1); err != nil {
			s.t.Fatal(err)
		}
		return len(es) == 1 && es[0].Done
	})
	return es[0]
}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func mustNotContain(t *testing.T, what, s string, nevers ...string) {
	t.Helper()
	for _, n := range nevers {
		if strings.Contains(s, n) {
			t.Errorf("%s holds %q:\n%s", what, n, s)
		}
	}
}

// TestScenarioSelfServiceConsent: a citizen gives the FSE consents with
// card and PIN. The receipt comes out of the printer with the CMS's
// protocol number; the CMS recorded the consents and one audit record;
// there is no second half to notify.
func TestScenarioSelfServiceConsent(t *testing.T) {
	s, ctx := startSceneFor(t, 60*time.Second)
	const serial = "6090012345678000"

	s.wait(ctx, "Inserire la tessera")
	s.cards.insert(ctx, "cns")
	s.run(ctx, []step{{"1 Consensi FSE", "1"}, {"PIN:", s.cards.pin("cns")}, {"PIN: *****", "\r"}, {"Informativa FSE", "#"},
		{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo", "\r"}})
	s.wait(ctx, "Accolta. Protocollo:")

	e := s.last(ctx)
	rec, err := s.c.CMS.Consents(serial)
	if err != nil {
		t.Fatal(err)
	}
	if rec.OpID != e.ID || len(rec.Consents) != 2 || !rec.Consents[0].Given || rec.Consents[1].Given {
		t.Fatalf("CMS consents %+v for op %s", rec, e.ID)
	}
	r := s.receipts(ctx, 1)[0]
	mustContain(t, "receipt", r, "Consensi FSE", "Protocollo: "+rec.Protocol, "Esito: ACCOLTA", "RSS**********01U",
		"Consultazione (i medici possono leggere il Fascicolo): SÌ")
	mustNotContain(t, "receipt", r, "RSSMRA80A01H501U", "ROSSI", "MARIO", "PROVVISORIA")
	if notes, err := s.c.CMS.Notifications(serial); err != nil || len(notes) != 0 {
		t.Errorf("consents notified second halves: %+v, %v", notes, err)
	}
	audit := s.audit(e.ID)
	if len(audit) != 1 || audit[0].Kind != "consent" || !audit[0].Accepted || audit[0].Protocol != rec.Protocol ||
		audit[0].Channel != "self" || audit[0].Serial != serial || audit[0].Operator != "" {
		t.Fatalf("audit %+v", audit)
	}

	s.cards.remove(ctx)
	s.wait(ctx, "Inserire la tessera")
	mustNotContain(t, "idle screen", s.screen(), rec.Protocol)
	s.finish()
}

// TestScenarioSelfServiceReprint: a citizen who forgot the PIN gets the
// first halves of PIN and PUK printed; the CMS sends the second halves to
// the contact chosen at activation (recorded, not sent) and audits it.
func TestScenarioSelfServiceReprint(t *testing.T) {
	s, ctx := startSceneFor(t, 60*time.Second)
	const serial = "6090012345678000"

	s.wait(ctx, "Inserire la tessera")
	s.cards.insert(ctx, "cns")
	s.run(ctx, []step{{"1 Consensi FSE", "5"}, {"1 Codici dimenticati", "1"}})
	s.wait(ctx, "seconde metà a:") // the summary: nothing sent before #
	if es, _ := s.box.Recent(1); len(es) != 0 {
		t.Fatalf("sent before the summary was confirmed: %+v", es)
	}
	s.press("#")
	s.wait(ctx, "Accolta. Protocollo:")

	e := s.last(ctx)
	if e.Kind != "reprint" || e.Result.Processing.Status != "accepted" {
		t.Fatalf("entry %+v", e)
	}
	notes, err := s.c.CMS.Notifications(serial)
	if err != nil || len(notes) != 1 || notes[0].OpID != e.ID {
		t.Fatalf("notifications %+v, %v", notes, err)
	}
	r := s.receipts(ctx, 1)[0]
	mustContain(t, "receipt", r, "Ristampa PIN/PUK", "Protocollo: "+e.Result.Transport.Protocol, "Esito: ACCOLTA",
		"Prima metà del PIN:", "Prima metà del PUK:", "Le seconde metà saranno inviate a: SMS")
	mustNotContain(t, "receipt", r, "RSSMRA80A01H501U", "ROSSI", "MARIO")
	audit := s.audit(e.ID)
	if len(audit) != 1 || audit[0].Kind != "reprint" || !audit[0].Accepted || audit[0].Serial != serial {
		t.Fatalf("audit %+v", audit)
	}
	// The first halves are on paper only: not in the print queue, not in
	// the logs.
	s.cards.remove(ctx)
	s.wait(ctx, "Inserire la tessera")
	s.finish()
}

// run waits for each step's screen and types its keys.
func (s *scene) run(ctx context.Context, script []step) {
	s.t.Helper()
	for _, st := range script {
		if st.keys == pageTo { // # through the summary's pages to want, then #
			s.wait(ctx, "Riepilogo 1/")
			for i := 0; !strings.Contains(s.screen(), st.want); i++ {
				if i > 10 {
					s.t.Fatalf("no %q in the summary's pages", st.want)
				}
				sc := s.screen()
				s.press("#")
				haltest.Until(s.t, ctx, "# turning the summary's page", func() bool { return s.screen() != sc })
			}
			s.press("#")
			continue
		}
		s.wait(ctx, st.want)
		s.press(st.keys)
	}
}

// finish stops the totem and checks that no log line holds personal data.
func (s *scene) finish() {
	s.t.Helper()
	s.stop()
	checkLogs(s.t, s.logs)
}

// logout takes the citizen's card out, then the operator logs out (D).
func (s *scene) logout(ctx context.Context) {
	s.t.Helper()
	s.cards.remove(ctx)
	s.wait(ctx, "Inserire la TS del")
	s.press("D")
	s.wait(ctx, "Inserire la tessera")
}

// activateMinor has the operator log in and activate the minor's card for
// the parent (delegation, SMS, no extras); it returns the declaration
// printed before the request goes out, then confirms it was signed and
// waits for the acceptance.
func (s *scene) activateMinor(ctx context.Context) (decl string) {
	s.t.Helper()
	s.login(ctx)
	s.cards.insert(ctx, "minor")
	s.run(ctx, cat([]step{{"1 Attivazione", "1"}, {"informativa", "1"}},
		delegSteps("2", "ROSSI MARIO", "RSSMRA80A01H501U"), smsSteps, noExtras, confirm))
	decl = s.receipts(ctx, 1)[0]
	s.run(ctx, []step{{"Far firmare", "1"}})
	s.wait(ctx, "Accolta. Protocollo:")
	return decl
}

// login opens an operator session with the operator card and its PIN, and
// leaves the slot empty for the citizen's card.
func (s *scene) login(ctx context.Context) {
	s.t.Helper()
	s.wait(ctx, "Inserire la tessera")
	s.cards.insert(ctx, "operator")
	s.run(ctx, []step{{"PIN:", s.cards.pin("operator") + "#"}})
	s.wait(ctx, "Op. ************2006")
	s.cards.remove(ctx)
	s.wait(ctx, "Inserire la TS del")
}

// TestScenarioAssistedActivationMinor: an operator activates a minor's
// card for the parent present with an identity document. The dichiarazione
// sostitutiva comes out to be signed, then the codes (first halves, CIP),
// the acceptance form the parent signs, and the summary; the CMS activated the card, recorded the
// delegation, the notification of the second halves to the parent's phone,
// and one audit record naming the operator.
func TestScenarioAssistedActivationMinor(t *testing.T) {
	s, ctx := startSceneFor(t, 90*time.Second)
	const serial = "6090011111111006"

	// The declaration is printed before the request goes out; the operator
	// confirms it was signed.
	decl := s.activateMinor(ctx)
	mustContain(t, "dichiarazione", decl, "Dichiarazione sostitutiva", "ROSSI MARIO, codice fiscale RSSMRA80A01H501U",
		"Firma del dichiarante")

	e := s.last(ctx)
	var res struct {
		PIN string `json:"pin_first_half"`
		PUK string `json:"puk_first_half"`
		CIP string `json:"cip"`
	}
	if err := json.Unmarshal(e.Result.Data, &res); err != nil || res.PIN == "" || res.PUK == "" || res.CIP == "" {
		t.Fatalf("activation result %s: %v", e.Result.Data, err)
	}
	prot := e.Result.Transport.Protocol
	rs := s.receipts(ctx, 4)
	codes, form, summary := rs[1], rs[2], rs[3]
	mustContain(t, "codes sheet", codes, "Codici della tessera", "Prima metà del PIN: "+res.PIN,
		"Prima metà del PUK: "+res.PUK, "Codice CIP (per la revoca): "+res.CIP, "Protocollo: "+prot)
	mustContain(t, "acceptance form", form, "Modulo di accettazione", "Firma del genitore (responsabilità genitoriale)", "Protocollo: "+prot)
	mustNotContain(t, "acceptance form", form, res.CIP, "metà del PIN", "Firma del titolare")
	mustContain(t, "summary", summary, "Attivazione TS-CNS", "Operatore: carta ************2006",
		"Delegato: codice fiscale RSS**********01U", "Protocollo: "+prot, "Esito: ACCOLTA")
	mustNotContain(t, "summary", summary, "ROSSI", res.CIP, "VRDLCU15C10H501Y")

	card, err := s.c.CMS.Card(serial)
	if err != nil {
		t.Fatal(err)
	}
	if card.State != cms.CardActive || len(card.Delegations) != 1 || card.Delegations[0].Kind != cms.DelegParental ||
		card.Delegations[0].CF != "RSSMRA80A01H501U" {
		t.Fatalf("card %+v", card)
	}
	notes, err := s.c.CMS.Notifications(serial)
	if err != nil || len(notes) != 1 || notes[0].Kind != cms.KindActivation || notes[0].OpID != e.ID ||
		notes[0].To != "3331234567" {
		t.Fatalf("notifications %+v, %v", notes, err)
	}
	audit := s.audit(e.ID)
	if len(audit) != 1 || audit[0].Kind != cms.KindActivation || !audit[0].Accepted || audit[0].Channel != cms.Assisted ||
		audit[0].Operator != opSerial || audit[0].Serial != serial || audit[0].Protocol != prot {
		t.Fatalf("audit %+v", audit)
	}

	s.logout(ctx) // the operator logs out
	s.finish()
	mustNotContain(t, "logs", s.logs.String(), "VRDLCU15C10H501Y", "VERDI", "ROSSI", "CA12345AB", "3331234567",
		res.PIN, res.CIP)
}

// TestScenarioAssistedRevocation: an operator revokes a stolen card for
// its holder, present with an identity document; the revocation comes with
// a request for a new card. The receipt names the reissue request and the
// operator; the CMS revoked the card, recorded the reissue and audited the
// operator.
func TestScenarioAssistedRevocation(t *testing.T) {
	s, ctx := startSceneFor(t, 90*time.Second)
	const serial = "6090012345678000"

	s.login(ctx)
	s.cards.insert(ctx, "cns")
	s.run(ctx, cat([]step{{"2 Revoca", "2"}, {"Motivo: 1 Furto", "1"}}, directSteps, []step{{"+ nuova tessera", "#"}}))
	s.wait(ctx, "Accolta. Protocollo:")

	e := s.last(ctx)
	card, err := s.c.CMS.Card(serial)
	if err != nil {
		t.Fatal(err)
	}
	re, err := s.c.CMS.Reissue(serial)
	if card.State != cms.CardRevoked || err != nil || re.Source != cms.KindRevocation || re.OpID != e.ID {
		t.Fatalf("card %+v reissue %+v, %v", card, re, err)
	}
	r := s.receipts(ctx, 1)[0]
	mustContain(t, "receipt", r, "Revoca TS-CNS", "Richiesta di nuova tessera: "+re.ID,
		"Operatore: carta ************2006", "Protocollo: "+e.Result.Transport.Protocol, "Esito: ACCOLTA")
	mustNotContain(t, "receipt", r, "RSSMRA80A01H501U", "ROSSI", "MARIO")
	audit := s.audit(e.ID)
	if len(audit) != 1 || audit[0].Kind != cms.KindRevocation || !audit[0].Accepted || audit[0].Channel != cms.Assisted ||
		audit[0].Operator != opSerial || audit[0].Serial != serial {
		t.Fatalf("audit %+v", audit)
	}
	// A revocation sends no second halves: the card is dead.
	if notes, err := s.c.CMS.Notifications(serial); err != nil || len(notes) != 0 {
		t.Errorf("notifications %+v, %v", notes, err)
	}

	s.logout(ctx)
	s.finish()
}

// TestScenarioAssistedConsentsParentForMinor: a parent activates the
// minor's card at the counter, then comes back to give the FSE consents
// for the minor (seed 001: "diretto interessato o delegato (potestà
// parentale / tutore / curatore)"): the informativa, potestà parentale
// with the parent's name and CF, the parent's document, the consents, the
// dichiarazione sostitutiva printed and signed; the CMS recorded the
// consents with the delegate, and the receipt says so and what became of
// the FSE.
func TestScenarioAssistedConsentsParentForMinor(t *testing.T) {
	s, ctx := startSceneFor(t, 120*time.Second)
	const serial = "6090011111111006"

	s.activateMinor(ctx)
	s.receipts(ctx, 4) // the declaration, the codes, the form to sign, the summary
	s.cards.remove(ctx)
	s.wait(ctx, "Inserire la TS del")

	s.cards.insert(ctx, "minor")
	s.run(ctx, cat([]step{{"1 Attivazione", "#"}, {"3 Consensi FSE", "3"}, {"Informativa FSE", "#"}},
		delegSteps("2", "ROSSI MARIO", "RSSMRA80A01H501U"),
		[]step{{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo:", "#"}}))
	decl := s.receipts(ctx, 5)[4]
	mustContain(t, "declaration", decl, "Dichiarazione sostitutiva", "ROSSI MARIO, codice fiscale RSSMRA80A01H501U",
		"rilascia in sua vece i consensi al Fascicolo Sanitario Elettronico")
	s.run(ctx, []step{{"Far firmare", "1"}})
	s.wait(ctx, "Accolta. Protocollo:")

	e := s.last(ctx)
	if e.Kind != cms.KindConsent {
		t.Fatalf("last op %+v", e)
	}
	prot := e.Result.Transport.Protocol
	r := s.receipts(ctx, 6)[5]
	mustContain(t, "consent receipt", r, "Consensi FSE", "Richiesta: su delega (responsabilità genitoriale)",
		"Delegato: codice fiscale RSS**********01U", "Dichiarazione sostitutiva firmata", "Operatore: carta ************2006",
		"Fascicolo Sanitario Elettronico: attivo.", "Protocollo: "+prot, "Esito: ACCOLTA")
	mustNotContain(t, "consent receipt", r, "ROSSI", "VRDLCU15C10H501Y", "CA12345AB")
	rec, err := s.c.CMS.Consents(serial)
	if err != nil || rec.Delegate == nil || rec.Delegate.Kind != cms.DelegParental || rec.Delegate.CF != "RSSMRA80A01H501U" ||
		rec.Channel != cms.Assisted || rec.Operator != opSerial || rec.Protocol != prot {
		t.Fatalf("consents %+v, %v", rec, err)
	}

	s.logout(ctx)
	s.finish()
	mustNotContain(t, "logs", s.logs.String(), "VRDLCU15C10H501Y", "VERDI", "ROSSI", "CA12345AB")
}

// reissueScene runs Riemissione for the holder of the demo card, at a totem
// configured as a counter, against a hub whose registry names counters.
func reissueScene(t *testing.T, counters []string) (*scene, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	s := startSceneOpts(t, sceneOpts{totemCounter: true, hubCounters: counters})
	s.login(ctx)
	s.cards.insert(ctx, "cns")
	s.run(ctx, cat([]step{{"1 Attivazione", "#"}, {"7 Riemiss.", "7"}, {"Nuova tessera per:", "3"}}, directSteps,
		[]step{{"Riemissione per", "#"}}))
	return s, ctx
}

// TestScenarioReissueAtEnabledCounter: at a totem the hub's fleet registry
// knows as an enabled counter, the operator asks a new card for the holder
// present; the CMS records the request and the receipt names it.
func TestScenarioReissueAtEnabledCounter(t *testing.T) {
	const serial = "6090012345678000"
	s, ctx := reissueScene(t, []string{totemID})
	s.wait(ctx, "Accolta. Protocollo:")
	e := s.last(ctx)
	re, err := s.c.CMS.Reissue(serial)
	if err != nil || re.Source != cms.KindReissue || re.OpID != e.ID {
		t.Fatalf("reissue %+v, %v", re, err)
	}
	r := s.receipts(ctx, 1)[0]
	mustContain(t, "receipt", r, "Riemissione TS-CNS", "Motivo: malfunzionamento", "Richiesta di nuova tessera: "+re.ID,
		"Richiesta: diretta, dal titolare", "Operatore: carta ************2006", "Esito: ACCOLTA")
	audit := s.audit(e.ID)
	if len(audit) != 1 || audit[0].Kind != cms.KindReissue || !audit[0].Accepted || audit[0].Operator != opSerial {
		t.Fatalf("audit %+v", audit)
	}
	s.finish()
}

// TestScenarioReissueRefusedElsewhere: the totem is configured as a
// counter, but the hub's registry does not know it as one: the CMS refuses
// the request (the totem's configuration is no proof), nothing is recorded.
func TestScenarioReissueRefusedElsewhere(t *testing.T) {
	s, ctx := reissueScene(t, []string{"another-totem"})
	s.wait(ctx, "rifiutata")
	e := s.last(ctx)
	if e.Result.Processing.Status != "rejected" || len(e.Result.Processing.Errors) == 0 ||
		e.Result.Processing.Errors[0].Code != cms.CodeReissueCounter {
		t.Fatalf("result %+v", e.Result)
	}
	if _, err := s.c.CMS.Reissue("6090012345678000"); err == nil {
		t.Fatal("a reissue was recorded")
	}
	s.finish()
}

// TestScenarioCardLots: the lots real readers meet. A CIE 3.0 on an NXP
// chip (no IAS application) is recognised as an identity card and the
// citizen told to use the health card; an ST2022 TS-CNS laid on the NFC
// side of a dual reader is read through its JSign4 application and serves
// the menu; a chip whose codice fiscale fails its check character is
// unreadable data, sent to the Scelta e Revoca desk.
func TestScenarioCardLots(t *testing.T) {
	s, ctx := startSceneFor(t, 60*time.Second)
	for _, tc := range []struct{ card, want, never string }{
		{"cie-nxp", "usare la tessera", "riconosciuta"},
		{"cns-nfc", "1 Consensi FSE", "riconosciuta"},
		{"badcf", "sportello Scelta", "Consensi"},
	} {
		s.wait(ctx, "Inserire la tessera")
		s.cards.insert(ctx, tc.card)
		sc := s.wait(ctx, tc.want)
		mustNotContain(t, tc.card+" screen", sc, tc.never)
		s.cards.remove(ctx)
	}
	s.wait(ctx, "Inserire la tessera")
	s.finish()
}
