package firmware_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
)

// desk is a totem in assisted mode with the reference CMS behind it, in
// process: what the hub does (apply in order, answer) without MQTT.
type desk struct {
	*local
	store *refcms.Store
	// online is the link to the hub: while it says false, operations
	// stay pending, as they would with the hub out of reach.
	online func() bool
}

func startDesk(t *testing.T, online bool) *desk {
	t.Helper()
	return startDeskOpts(t, localOpts{online: func() bool { return online }})
}

func startDeskOpts(t *testing.T, o localOpts) *desk {
	t.Helper()
	store, err := refcms.Open(filepath.Join(t.TempDir(), "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	if o.link == nil {
		o.link = func() firmware.Link { return storeLink{store} }
	}
	if o.resultWait == 0 && (o.online == nil || o.online()) {
		// An online desk answers every operation: the App's result wait
		// is then a failure bound, not a race with serve below (three
		// bbolt commits, which take longer than startLocalOpts' 50 ms on
		// a loaded machine, and the screen said "Esito arrivato" instead
		// of "Accolta"). Offline nothing answers, so the short wait
		// decides nothing by speed and keeps those tests quick.
		o.resultWait = 10 * time.Second
	}
	l := startLocalOpts(t, o)
	d := &desk{local: l, store: store, online: o.online}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		store.Close()
	})
	return d
}

// storeLink is the link of a desk: it answers a card's state from the
// store, as the hub does (the technician's commands are not served).
type storeLink struct{ s *refcms.Store }

func (storeLink) Resend(context.Context, string) (outbox.Entry, error) {
	return outbox.Entry{}, firmware.ErrNoLink
}
func (storeLink) Void(context.Context, string) (outbox.Entry, error) {
	return outbox.Entry{}, firmware.ErrNoLink
}
func (storeLink) Ledger(context.Context, uint64, int) (*protocol.Ledger, error) {
	return nil, firmware.ErrNoLink
}

func (l storeLink) CardState(_ context.Context, serial string) (string, error) {
	c, err := l.s.Card(serial)
	if errors.Is(err, cms.ErrNotFound) {
		return protocol.CardUnknown, nil
	}
	return string(c.State), err
}

// serve applies each operation the totem makes durable, as the hub would.
func (d *desk) serve(ctx context.Context) {
	var after uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.box.Notify():
		}
		if d.online != nil && !d.online() {
			continue
		}
		pending, err := d.box.Pending(after, 16)
		if err != nil {
			d.t.Errorf("pending: %v", err)
			return
		}
		for _, e := range pending {
			out, err := d.store.Apply(ctx, cms.Op{ID: e.ID, Totem: "t-local", Seq: e.Seq, Kind: e.Kind, Payload: e.Payload,
				Created: e.Created, Expires: e.Expires, Received: time.Now()})
			if err != nil {
				d.t.Errorf("apply: %v", err)
				return
			}
			res := &protocol.Result{V: protocol.Version, OpID: e.ID, Seq: e.Seq, Data: out.Data,
				Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: out.Protocol, At: out.At},
				Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}
			if !out.Accepted {
				res.Processing.Status = protocol.ProcessingRejected
			}
			for _, r := range out.Rejects {
				res.Processing.Errors = append(res.Processing.Errors, protocol.Error{Code: r.Code, Message: r.Message})
			}
			got, err := d.box.Record(res)
			if err != nil {
				d.t.Errorf("record: %v", err)
				return
			}
			d.app.Result(got)
			after = e.Seq
		}
	}
}

// The multi-tap tables as an operator reads them on the keypad.
var (
	tapUpper = []string{"0", "1", "ABC2", "DEF3", "GHI4", "JKL5", "MNO6", "PQRS7", "TUV8", "WXYZ9"}
	tapName  = []string{" ", "'-", "ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ"}
	tapEmail = []string{"0", ".@-_1", "abc2", "def3", "ghi4", "jkl5", "mno6", "pqrs7", "tuv8", "wxyz9"}
)

// taps is the key presses that type s by multi-tap, then #.
func taps(s string, table []string) string {
	var b strings.Builder
	last := -1
	for _, c := range s {
		for k, set := range table {
			i := strings.IndexRune(set, c)
			if i < 0 {
				continue
			}
			if k == last {
				b.WriteByte('C')
			}
			b.WriteString(strings.Repeat(string(rune('0'+k)), i+1))
			last = k
			break
		}
	}
	return b.String() + "#"
}

const opSerial = "8090000000042006"

// login opens an operator session and leaves the slot empty.
func (d *desk) login(ctx context.Context) {
	d.t.Helper()
	d.reader.Insert(sim.OperatorCard())
	d.run(ctx, []step{{"PIN:", "54321#"}})
	d.wait(ctx, "Op. ************2006")
	d.reader.Remove()
	d.wait(ctx, "Inserire la TS del")
}

// Script pieces.
var (
	docSteps = []step{{"Documento:", "1"}, {"Numero documento", taps("CA12345AB", tapUpper)},
		{"GGMMAAAA", "31122035#"}, {"dati giusti?", "1"}}
	directSteps = append([]step{{"1 Diretta", "1"}}, docSteps...)
	smsSteps    = []step{{"1=SMS 2=E-mail", "1"}, {"Numero di cellulare", "3331234567#"}}
	noExtras    = []step{{"pagato 4,20", "2"}, {"Fascicolo", "2"}}
	confirm     = []step{{"#=Conferma", pageTo}}
)

func delegSteps(key, name, cf string) []step {
	return cat([]step{{"1 Diretta", key}, {"Cognome nome deleg.", taps(name, tapName)}, {"Cod. fiscale deleg.", taps(cf, tapUpper)}},
		docSteps)
}

func TestAssistedActivation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		card   *sim.Card
		online bool
		script []step
		want   string // the last screen
		// The outcome: accepted (the card active, notified, receipts),
		// rejected by the CMS with code, or refused at the totem (nothing
		// queued).
		accepted bool
		code     string
		queued   bool
		deleg    string
		receipts int
	}{
		{name: "direct", card: sim.IssuedCard(), online: true,
			script: cat([]step{{"informativa", "1"}}, directSteps, smsSteps, noExtras, confirm),
			want:   "Accolta. Protocollo:", accepted: true, queued: true, receipts: 3},
		{name: "direct with e-mail, reader and consents", card: sim.IssuedCard(), online: true,
			script: cat([]step{{"informativa", "1"}}, directSteps,
				[]step{{"1=SMS 2=E-mail", "2"}, {"Indirizzo e-mail", taps("anna.verdi@example.it", tapEmail)},
					{"pagato 4,20", "1"}, {"n. ricevuta", "420042#"}, {"Fascicolo", "1"},
					{"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo:", "#"}},
				confirm),
			want: "Accolta. Protocollo:", accepted: true, queued: true, receipts: 3},
		{name: "potestà parentale for a minor", card: sim.MinorCard(), online: true,
			script: cat([]step{{"informativa", "1"}}, delegSteps("2", "ROSSI MARIO", "RSSMRA80A01H501U"), smsSteps, noExtras, confirm,
				[]step{{"Far firmare", "1"}}),
			want: "Accolta. Protocollo:", accepted: true, queued: true, deleg: cms.DelegParental, receipts: 4},
		{name: "tutore for an adult", card: sim.IssuedCard(), online: true,
			script: cat([]step{{"informativa", "1"}}, delegSteps("3", "ROSSI MARIO", "RSSMRA80A01H501U"), smsSteps, noExtras, confirm,
				[]step{{"Far firmare", "1"}}),
			want: "Accolta. Protocollo:", accepted: true, queued: true, deleg: cms.DelegTutor, receipts: 4},
		{name: "curatore, back and forth", card: sim.IssuedCard(), online: true,
			script: cat([]step{{"informativa", "1"}, {"1 Diretta", "1"}, {"Documento:", "*"}, {"1 Diretta", "*"}, {"informativa", "1"}},
				delegSteps("4", "ROSSI MARIO", "RSSMRA80A01H501U"), smsSteps, noExtras, confirm,
				[]step{{"Far firmare", "*"}, {"#=Conferma", pageTo}, {"Far firmare", "1"}}),
			want: "Accolta. Protocollo:", accepted: true, queued: true, deleg: cms.DelegCurator, receipts: 5},
		{name: "potestà parentale for an adult", card: sim.IssuedCard(), online: true,
			script: []step{{"informativa", "1"}, {"1 Diretta", "2"}, {"è maggiorenne", "D"}},
			want:   "Operazione annullata"},
		{name: "delegate's CF invalid", card: sim.MinorCard(), online: true,
			script: []step{{"informativa", "1"}, {"1 Diretta", "2"}, {"Cognome nome deleg.", taps("ROSSI MARIO", tapName)},
				{"Cod. fiscale deleg.", taps("RSSMRA80A01H501X", tapUpper)}, {"non valido", "D"}},
			want: "Operazione annullata"},
		{name: "delegate is the holder", card: sim.MinorCard(), online: true,
			script: []step{{"informativa", "1"}, {"1 Diretta", "2"}, {"Cognome nome deleg.", taps("VERDI LUCA", tapName)},
				{"Cod. fiscale deleg.", taps("VRDLCU15C10H501Y", tapUpper)}, {"essere il titolare", "D"}},
			want: "Operazione annullata"},
		{name: "expired document", card: sim.IssuedCard(), online: true,
			script: []step{{"informativa", "1"}, {"1 Diretta", "1"}, {"Documento:", "3"},
				{"Numero documento", taps("U1234567X", tapUpper)}, {"GGMMAAAA", "31122020#"}, {"Documento scaduto", "D"}},
			want: "Operazione annullata"},
		{name: "identity check failed", card: sim.IssuedCard(), online: true,
			script: []step{{"informativa", "1"}, {"1 Diretta", "1"}, {"Documento:", "1"},
				{"Numero documento", taps("CA12345AB", tapUpper)}, {"GGMMAAAA", "31122035#"}, {"VERDI ANNA", "2"}},
			want: "Documento e dati"},
		{name: "declaration not signed", card: sim.MinorCard(), online: true,
			script: cat([]step{{"informativa", "1"}}, delegSteps("2", "ROSSI MARIO", "RSSMRA80A01H501U"), smsSteps, noExtras, confirm,
				[]step{{"Far firmare", "D"}}),
			want: "Operazione annullata", receipts: 1},
		{name: "already active", card: testCard(), online: true,
			script: nil, want: "Tessera già attiva:", code: cms.CodeAlreadyActive}, // refused at once: nothing queued
		{name: "revoked card", card: revokedCard(), online: true,
			script: cat([]step{{"informativa", "1"}}, directSteps, smsSteps, noExtras, confirm),
			want:   "rifiutata", queued: true, code: cms.CodeCardRevoked},
		{name: "offline", card: sim.IssuedCard(), online: false,
			script: nil, want: "disponibile ora"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, d, lb := deskWithCard(t, tc.online, tc.card)
			d.run(ctx, append([]step{{"1 Attivazione", "1"}}, tc.script...))
			defer func() {
				lb.AssertNoPII(t, tc.card.Info.CF, tc.card.Info.Surname, "CA12345AB", "3331234567", "anna.verdi")
			}()
			d.wait(ctx, tc.want)
			serial := tc.card.Info.Serial
			entries, _ := d.ops()
			if got := len(entries) > 0; got != tc.queued {
				t.Fatalf("queued %v, want %v: %+v", got, tc.queued, entries)
			}
			audit, err := d.store.Audit()
			if err != nil {
				t.Fatal(err)
			}
			audit = auditWithoutLookups(audit)
			if tc.queued {
				e := entries[0]
				if e.Kind != cms.KindActivation || !e.Done || e.Expires.Sub(e.Created) > 2*time.Minute {
					t.Fatalf("entry %+v", e)
				}
				if len(audit) != 1 || audit[0].Operator != opSerial || audit[0].Channel != cms.Assisted ||
					audit[0].Accepted != tc.accepted || audit[0].Serial != serial {
					t.Fatalf("audit %+v", audit)
				}
				if tc.code != "" && (len(e.Result.Processing.Errors) == 0 || e.Result.Processing.Errors[0].Code != tc.code) {
					t.Fatalf("result %+v, want %s", e.Result.Processing, tc.code)
				}
			} else if len(audit) != 0 {
				t.Fatalf("audit %+v for an operation refused at the totem", audit)
			}
			card, err := d.store.Card(serial)
			if err != nil {
				t.Fatal(err)
			}
			notes, _ := d.store.Notifications(serial)
			if !tc.accepted {
				if tc.code == "" && card.State == cms.CardActive {
					t.Fatal("card activated")
				}
				if len(notes) != 0 {
					t.Fatalf("notifications %+v", notes)
				}
			} else {
				var res cms.ActivationResult
				if err := json.Unmarshal(entries[0].Result.Data, &res); err != nil {
					t.Fatal(err)
				}
				if card.State != cms.CardActive || len(notes) != 1 || notes[0].Kind != cms.KindActivation ||
					notes[0].OpID != entries[0].ID || notes[0].To != card.Contact.Address {
					t.Fatalf("card %+v notifications %+v", card, notes)
				}
				if tc.deleg != "" && (len(card.Delegations) != 1 || card.Delegations[0].Kind != tc.deleg ||
					card.Delegations[0].CF != "RSSMRA80A01H501U" || card.Delegations[0].Name != "ROSSI MARIO") {
					t.Fatalf("delegations %+v", card.Delegations)
				}
				d.checkActivationReceipts(res, entries[0].Result.Transport.Protocol, tc.deleg != "")
			}
			d.reader.Remove()
			d.wait(ctx, "Inserire la TS del")
			if n := len(d.printer.Receipts()); n != tc.receipts {
				t.Fatalf("%d receipts, want %d", n, tc.receipts)
			}
			d.panel.Press(hal.KeyCancel) // logout
			d.wait(ctx, "Inserire la tessera")
		})
	}
}

// deskWithCard starts a desk, online or not, logging to a fresh log; it
// opens an operator session and puts card in the reader.
func deskWithCard(t *testing.T, online bool, card *sim.Card) (context.Context, *desk, *synctest.Log) {
	t.Helper()
	ctx := ctxT(t)
	lb, log := newLog()
	d := startDeskOpts(t, localOpts{online: func() bool { return online }, log: log})
	d.login(ctx)
	d.reader.Insert(card)
	return ctx, d, lb
}

func revokedCard() *sim.Card {
	c := testCard()
	c.Info.Serial, c.Info.CF = "6090098765432002", "BNCLRA75D45F205C"
	c.Info.Expiry = time.Date(2029, 6, 30, 0, 0, 0, 0, time.UTC)
	return c
}

func (d *desk) checkActivationReceipts(res cms.ActivationResult, prot string, deleg bool) {
	t := d.t
	t.Helper()
	rs := d.printer.Receipts()
	n := len(rs)
	codes, form, summary := flat(rs[n-3]), flat(rs[n-2]), flat(rs[n-1])
	// The codes on a sheet of their own, unsigned; the form to sign
	// without them (issue 17).
	if !strings.Contains(form, "Modulo di accettazione") || !strings.Contains(form, "Firma ") ||
		strings.Contains(form, "metà del PIN") || strings.Contains(form, res.CIP) {
		t.Errorf("acceptance form: %s", form)
	}
	if deleg == strings.Contains(form, "Firma del titolare") {
		t.Errorf("acceptance form signed by the wrong person (delegation %v): %s", deleg, form)
	}
	if strings.Contains(codes, "Firma") {
		t.Errorf("the codes sheet is to sign: %s", codes)
	}
	form = codes
	for _, want := range []string{"Codici della tessera", "Prima metà del PIN: " + res.PINFirstHalf,
		"Prima metà del PUK: " + res.PUKFirstHalf, "Codice CIP (per la revoca): " + res.CIP, "Protocollo: " + prot} {
		if !strings.Contains(form, want) {
			t.Errorf("acceptance form lacks %q: %s", want, form)
		}
	}
	for _, want := range []string{"Attivazione TS-CNS", "Operatore: carta ************2006", "Documento verificato: carta d'identità",
		"Protocollo: " + prot, "Esito: ACCOLTA"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q: %s", want, summary)
		}
	}
	// The half PIN is a few random digits: looked for as a whole word (a
	// date or a protocol number may hold the same digits), with the
	// labels that would introduce it.
	if strings.Contains(summary, "metà del PIN") || strings.Contains(summary, "metà del PUK") ||
		slices.Contains(strings.Fields(summary), res.PINFirstHalf) || strings.Contains(summary, res.CIP) {
		t.Errorf("summary holds codes: %s", summary)
	}
	if deleg {
		decl := flat(rs[n-4])
		for _, want := range []string{"Dichiarazione sostitutiva", "ROSSI MARIO, codice fiscale RSSMRA80A01H501U", "Firma del dichiarante"} {
			if !strings.Contains(decl, want) {
				t.Errorf("declaration lacks %q: %s", want, decl)
			}
		}
		if !strings.Contains(summary, "Delegato: codice fiscale RSS**********01U") || strings.Contains(summary, "ROSSI") {
			t.Errorf("summary delegate: %s", summary)
		}
	}
}

func TestAssistedRevocation(t *testing.T) {
	demoTEAM := cms.TEAM("6090012345678000")
	for _, tc := range []struct {
		name     string
		card     *sim.Card // nil: by TEAM code, the card not in the slot
		online   bool
		script   []step
		want     string
		accepted bool
		code     string
		queued   bool
		deleg    string
	}{
		{name: "theft, in person", card: testCard(), online: true,
			script: cat([]step{{"Motivo: 1 Furto", "1"}}, directSteps, []step{{"+ nuova tessera", "#"}}),
			want:   "Accolta. Protocollo:", accepted: true, queued: true},
		{name: "malfunction, tutore", card: testCard(), online: true,
			script: cat([]step{{"Motivo: 1 Furto", "3"}}, delegSteps("3", "VERDI ANNA", "VRDNNA70M50F205B"), []step{{"+ nuova tessera", "#"}}),
			want:   "Accolta. Protocollo:", accepted: true, queued: true, deleg: cms.DelegTutor},
		{name: "loss, by TEAM code", online: true,
			script: cat([]step{{"Codice TEAM", demoTEAM + "#"}, {"Motivo: 1 Furto", "2"}}, directSteps, []step{{"+ nuova tessera", "#"}}),
			want:   "Accolta. Protocollo:", accepted: true, queued: true},
		{name: "TEAM code mistyped", online: true,
			script: []step{{"Codice TEAM", demoTEAM[:19] + "0#"}, {"non valido", "D"}},
			want:   "Operazione annullata"},
		{name: "potestà parentale for an adult", card: testCard(), online: true,
			script: []step{{"Motivo: 1 Furto", "1"}, {"1 Diretta", "2"}, {"è maggiorenne", "D"}},
			want:   "Operazione annullata"},
		{name: "summary, back, cancel", card: testCard(), online: true,
			script: cat([]step{{"Motivo: 1 Furto", "1"}}, directSteps, []step{{"+ nuova tessera", "*"}, {"dati giusti?", "D"}}),
			want:   "Operazione annullata"},
		{name: "already revoked", card: revokedCard(), online: true,
			script: cat([]step{{"Motivo: 1 Furto", "2"}}, directSteps, []step{{"+ nuova tessera", "#"}}),
			want:   "rifiutata", queued: true, code: cms.CodeCardRevoked},
		{name: "offline", card: testCard(), online: false, want: "disponibile ora"},
		{name: "offline, by TEAM code", online: false, want: "disponibile ora"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			d := startDesk(t, tc.online)
			d.login(ctx)
			serial := "6090012345678000"
			if tc.card != nil {
				serial = tc.card.Info.Serial
				d.reader.Insert(tc.card)
				d.run(ctx, []step{{"2 Revoca", "2"}})
			} else {
				d.panel.Press('1')
			}
			d.run(ctx, tc.script)
			d.wait(ctx, tc.want)
			entries, _ := d.ops()
			if got := len(entries) > 0; got != tc.queued {
				t.Fatalf("queued %v, want %v: %+v", got, tc.queued, entries)
			}
			audit, _ := d.store.Audit()
			audit = auditWithoutLookups(audit)
			card, _ := d.store.Card(serial)
			if !tc.queued {
				if len(audit) != 0 || card.State == cms.CardRevoked {
					t.Fatalf("refused at the totem, yet audit %+v card %+v", audit, card)
				}
			} else {
				e := entries[0]
				if e.Kind != cms.KindRevocation || !e.Done || len(audit) != 1 || audit[0].Operator != opSerial ||
					audit[0].Accepted != tc.accepted || audit[0].Serial != serial {
					t.Fatalf("entry %+v audit %+v", e, audit)
				}
				if tc.code != "" && (len(e.Result.Processing.Errors) == 0 || e.Result.Processing.Errors[0].Code != tc.code) {
					t.Fatalf("result %+v, want %s", e.Result.Processing, tc.code)
				}
			}
			if tc.accepted {
				re, err := d.store.Reissue(serial)
				if card.State != cms.CardRevoked || err != nil || re.Source != cms.KindRevocation {
					t.Fatalf("card %+v reissue %+v, %v", card, re, err)
				}
				rs := d.printer.Receipts()
				if len(rs) != 1 {
					t.Fatalf("%d receipts", len(rs))
				}
				r := strings.Join(strings.Fields(rs[0]), " ")
				for _, want := range []string{"Revoca TS-CNS", "Richiesta di nuova tessera: " + re.ID,
					"Operatore: carta ************2006", "Esito: ACCOLTA"} {
					if !strings.Contains(r, want) {
						t.Errorf("receipt lacks %q: %s", want, r)
					}
				}
				if tc.deleg != "" && !strings.Contains(r, "Richiesta: su delega (tutore)") {
					t.Errorf("receipt: %s", r)
				}
			} else if n := len(d.printer.Receipts()); n != 0 {
				t.Fatalf("%d receipts", n)
			}
			if tc.card != nil {
				d.reader.Remove()
			} else {
				d.panel.Press(hal.KeyOK) // past the outcome screen
			}
			d.wait(ctx, "Inserire la TS del")
		})
	}
}

// The operator session: who may open it, how it ends, what it logs.
func TestOperatorSession(t *testing.T) {
	notLevel8 := sim.OperatorCard()
	notLevel8.Info.Serial = "6090012345678000"
	for _, tc := range []struct {
		name string
		log  string // a log line of the session's end
		run  func(ctx context.Context, d *desk)
	}{
		{"citizen card gets the citizen menu", "", func(ctx context.Context, d *desk) {
			d.insert(ctx, testCard())
			if s := d.panel.Text(); strings.Contains(s, "Attivazione") {
				t.Fatalf("assisted menu for a citizen card: %q", s)
			}
		}},
		{"operator class without a level 8/9 serial", "operator card refused", func(ctx context.Context, d *desk) {
			d.reader.Insert(notLevel8)
			d.wait(ctx, "livello 8 o 9")
		}},
		{"wrong operator PIN", "pin refused", func(ctx context.Context, d *desk) {
			d.reader.Insert(sim.OperatorCard())
			d.run(ctx, []step{{"PIN:", "11111#"}, {"Restano 2 tentativi", "D"}, {"Operazione annullata", ""}})
			d.remove(ctx)
			d.insert(ctx, testCard()) // no operator session was left open
		}},
		{"operator card as the citizen's", "reason=operator_card", func(ctx context.Context, d *desk) {
			d.login(ctx)
			d.reader.Insert(sim.OperatorCard())
			d.wait(ctx, "inserire la tessera")
			d.reader.Remove()
			d.wait(ctx, "Inserire la TS del")
		}},
		{"logout, then citizens are self-service again", "reason=logout", func(ctx context.Context, d *desk) {
			d.login(ctx)
			d.panel.Press(hal.KeyCancel)
			d.wait(ctx, "Inserire la tessera")
			d.insert(ctx, testCard())
		}},
		{"logout with the operator card in", "reason=logout", func(ctx context.Context, d *desk) {
			d.reader.Insert(sim.OperatorCard())
			d.run(ctx, []step{{"PIN:", "54321#"}, {"Rimuovere la carta", "D"}, {"Sessione operatore", ""}})
			d.remove(ctx)
		}},
		{"operator timeout", "reason=idle_timeout", func(ctx context.Context, d *desk) {
			d.login(ctx)
			// "Serve altro tempo?" first (issue 17): a key gives the time back.
			d.advanceUntil("Serve altro tempo?", 10*time.Second)
			d.panel.Press('5')
			d.wait(ctx, "Inserire la TS del")
			d.advanceUntil("Serve altro tempo?", 10*time.Second)
			d.advanceUntil("Inserire la tessera", 10*time.Second) // nobody: the session ends by itself
		}},
		{"two citizens in one session", "assisted citizen done", func(ctx context.Context, d *desk) {
			d.login(ctx)
			for range 2 {
				d.reader.Insert(testCard())
				d.run(ctx, []step{{"1 Attivazione", "D"}, {"Rimuovere la", ""}})
				d.reader.Remove()
				d.wait(ctx, "Inserire la TS del")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			lb, log := newLog()
			o := localOpts{online: func() bool { return true }, log: log, opIdle: time.Minute}
			if tc.name == "operator timeout" {
				o.opIdle, o.clock = 2*time.Minute, haltest.NewClock(time.Now())
			}
			d := startDeskOpts(t, o)
			tc.run(ctx, d)
			if !strings.Contains(lb.String(), tc.log) {
				t.Errorf("no log line with %q", tc.log)
			}
			if q, _ := d.box.Stats(); q.LastSeq != 0 {
				t.Fatalf("queued %+v", q)
			}
			lb.AssertNoPII(t, "BNCLCU75C15F205O", opSerial, "54321")
		})
	}
}

// The operator sees everything typed, in full, before confirming — the
// delegate's name and CF, the document, the whole e-mail address, the
// payment — and the identity check says whose document it is: the
// delegate's, checked against the delegate (issue 17, operator items 16
// and 17).
func TestOperatorSummaryInFull(t *testing.T) {
	ctx := ctxT(t)
	d := startDeskOpts(t, localOpts{online: func() bool { return true }})
	d.login(ctx)
	d.reader.Insert(sim.MinorCard())
	d.run(ctx, []step{{"1 Attivazione", "1"}, {"informativa", "1"}, {"1 Diretta", "2"},
		{"Cognome nome deleg.", taps("ROSSI MARIO", tapName)}, {"Cod. fiscale deleg.", taps("RSSMRA80A01H501U", tapUpper)},
		{"Documento:", "1"}, {"Numero documento", taps("CA12345AB", tapUpper)}, {"GGMMAAAA", "31122035#"}})
	check := d.screenFor(ctx, "dati giusti?")
	if !strings.Contains(check, "Documento delegato:") || !strings.Contains(check, "ROSSI MARIO") || strings.Contains(check, "VERDI") {
		t.Errorf("identity check of the delegate's document: %q", check)
	}
	d.panel.Press('1')
	d.run(ctx, []step{{"1=SMS 2=E-mail", "2"}, {"Indirizzo e-mail", taps("anna.verdi@example.it", tapEmail)},
		{"pagato 4,20", "1"}, {"n. ricevuta", "420042#"}, {"Fascicolo", "2"}, {"#=Conferma", pageTo}, {"Far firmare", "D"}})
	var rows []string
	for _, p := range d.seen {
		rows = append(rows, strings.Split(p, "\n")...)
	}
	all := strings.Join(rows, "\n")
	for _, want := range []string{"Richiesta: Genitore", "Delegato:\nROSSI MARIO", "CF RSSMRA80A01H501U", "C.I. CA12345AB",
		"Scadenza 31/12/2035", "E-mail a:\nanna.verdi", "@example.it", "Lettore: Sì", "Ricevuta 420042", "FSE: No"} {
		if !strings.Contains(all, want) {
			t.Errorf("the summary lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "***") {
		t.Errorf("the summary masks for the operator:\n%s", all)
	}
}
