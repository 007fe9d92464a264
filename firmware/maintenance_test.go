package firmware_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/maint"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/techset"
	"github.com/pquerna/otp/totp"
)

// maintRig is the printer rig with maintenance mode: a technician set
// signed by a hub key for the totem, a clock the test moves.
type maintRig struct {
	*printerRig
	clock  *haltest.Clock
	gate   *maint.Gate
	secret string
	logs   *synctest.Log
	hub    *techset.Store
	synced bool

	mu     sync.Mutex
	events []protocol.Event
}

func startMaint(t *testing.T) *maintRig { return startMaintSynced(t, true) }

// startMaintWith starts the rig with more options.
func startMaintWith(t *testing.T, opts ...func(*firmware.Options)) *maintRig {
	return startMaintSynced(t, true, opts...)
}

// startMaintSynced starts the rig with the clock synchronised or not.
func startMaintSynced(t *testing.T, synced bool, opts ...func(*firmware.Options)) *maintRig {
	t.Helper()
	hub, err := techset.OpenStore(filepath.Join(t.TempDir(), "technicians.json"))
	if err != nil {
		t.Fatal(err)
	}
	tech, _ := hub.Add("Tecnico Uno", time.Now())
	key, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	set := hub.For("t-print", time.Now())
	if err := techset.Sign(key, set); err != nil {
		t.Fatal(err)
	}
	signed, _ := json.Marshal(set)
	r := &maintRig{clock: haltest.NewClock(time.Now()), secret: tech.Secret, hub: hub, synced: synced}
	lb, log := newLog()
	r.logs = lb
	r.printerRig = startWithVPrinter(t, func(o *firmware.Options) {
		g, err := maint.New(maint.Options{Totem: "t-print", Keys: []cmdsig.PublicKey{key.Public()}, Store: o.Outbox,
			Clock: r.clock, Synced: func() bool { return r.synced }})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := g.SetTechnicians(signed); !ok || err != nil {
			t.Fatal(ok, err)
		}
		r.gate = g
		o.Maint, o.Clock, o.Logger, o.Version = g, r.clock, log, "1.2.3-test"
		o.Events = func(e protocol.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
		for _, f := range opts {
			f(o)
		}
	})
	return r
}

func (r *maintRig) code() string {
	c, err := totp.GenerateCode(r.secret, r.clock.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// login opens a maintenance session from the idle screen: the sequence,
// technician 1001 and the TOTP of now; it waits for the menu.
func (r *maintRig) login(ctx context.Context) {
	r.t.Helper()
	r.wait(ctx, "Inserire la tessera")
	r.panel.Type(firmware.MaintSequence)
	r.credentials(ctx, r.code())
	r.wait(ctx, "1 Stampante")
}

// credentials types technician 1001 and code at the login screens (the
// app's code or, with the clock unsynchronised, the unlock code).
func (r *maintRig) credentials(ctx context.Context, code string) {
	r.t.Helper()
	r.run(ctx, []step{{"Numero tecnico:", "1001#"}, {"Codice dell'app:", code + "#"}})
}

func (r *maintRig) event(code string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Code == code {
			return true
		}
	}
	return false
}

// A technician opens maintenance mode with the key sequence on the idle
// screen, types their number and TOTP, sees the printer report its paper
// near the end, prints the test page on the virtual printer, probes a
// card (class and ATR, nothing personal) and leaves; every step is
// audited with their number only.
func TestMaintenanceScenario(t *testing.T) {
	ctx := ctxT(t)
	r := startMaint(t)
	r.vp.SetCondition(vprinter.PaperNearEnd)
	r.wait(ctx, "Inserire la tessera")
	// A citizen's random keys: nothing opens.
	from := r.shown.count()
	r.panel.Type("*0*0*50")
	r.panel.Press('*')
	r.panel.Type(firmware.MaintSequence)
	r.wait(ctx, "Numero tecnico:")
	// The keys are taken in turn: whatever the random ones showed came
	// before the sequence's screen.
	for _, txt := range r.shown.since(from) {
		if strings.Contains(txt, "Numero tecnico:") {
			break
		}
		if !strings.Contains(txt, "Inserire la tessera") {
			t.Fatalf("random keys left the idle screen:\n%s", txt)
		}
	}
	r.run(ctx, []step{{"Numero tecnico:", "1001#"}, {"Codice dell'app:", r.code() + "#"},
		{"1 Stampante", "1"}}) // printer: condition and paper, then the test page
	r.wait(ctx, "Carta: quasi finita")
	r.wait(ctx, "pronta")
	if got := r.app.Telemetry().Devices["printer"]; got != "paper_near_end" {
		t.Fatalf("telemetry printer = %q", got)
	}
	r.panel.Press('1')
	r.wait(ctx, "Pagina di prova")
	r.wait(ctx, "stampata.")
	var page string
	for _, rc := range r.vp.Receipts() {
		if txt := rc.Text(48); rc.Cut && strings.Contains(txt, "Pagina di prova") && strings.Contains(txt, "Fine della prova") {
			page = txt
		}
	}
	if page == "" || !strings.Contains(page, "1.2.3-test") || !strings.Contains(page, "t-print") {
		t.Fatalf("no whole test page on the virtual printer:\n%s", page)
	}
	r.panel.Press('#')
	// Card reader: class and ATR, nothing from the chip's files.
	r.run(ctx, []step{{"Stampante:", "*"}, {"1 Stampante", "2"}, {"inserire una carta", ""}})
	card := testCard()
	r.reader.Insert(card)
	r.wait(ctx, "Carta: TS-CNS")
	r.wait(ctx, "3BDF18008131FE7D006B")
	if txt := r.panel.Text(); strings.Contains(txt, card.Info.CF) || strings.Contains(txt, card.Info.Surname) ||
		strings.Contains(txt, card.Info.Serial) {
		t.Fatalf("the card test shows personal data:\n%s", txt)
	}
	r.reader.Remove()
	// Pages and the version, then leave.
	r.run(ctx, []step{{"inserire una carta", "*"}, {"1 Stampante", "#"}, {"4 Coda e invii", "7"}, {"1.2.3-test", "#"},
		{"4 Coda e invii", "D"}})
	r.wait(ctx, "terminata")
	r.advanceUntil("Inserire la tessera", time.Second)

	logs := r.logs.String()
	mustContain(t, "audit", logs, "action=session_start", "actor=tech:1001", "action=printer_test_page detail=printed",
		"action=card_reader_test", "action=session_end detail=left")
	for _, secret := range []string{"Tecnico Uno", card.Info.CF, card.Info.Surname, r.secret} {
		if strings.Contains(logs, secret) {
			t.Errorf("a log line holds %q", secret)
		}
	}
}

// A session nobody touches ends after MaintIdle (the clock advanced).
func TestMaintenanceIdle(t *testing.T) {
	ctx := ctxT(t)
	r := startMaint(t)
	r.login(ctx)
	r.advanceUntil("terminata", 30*time.Second)
	r.advanceUntil("Inserire la tessera", time.Second)
	if !strings.Contains(r.logs.String(), "action=session_end detail=idle_timeout") {
		t.Fatal("idle end not audited")
	}
}

// Five wrong codes at the panel lock its entry for 15 minutes and raise
// an event; the sequence shows the lock meanwhile; after 15 minutes of
// the clock the technician gets in.
func TestMaintenanceLockout(t *testing.T) {
	ctx := ctxT(t)
	r := startMaint(t)
	r.wait(ctx, "Inserire la tessera")
	r.panel.Type(firmware.MaintSequence)
	for i := 0; i < maint.MaxFailures; i++ {
		r.credentials(ctx, "000000")
		if i < maint.MaxFailures-1 {
			r.wait(ctx, "non valido.")
			r.panel.Press('#')
		}
	}
	r.wait(ctx, "tra 15 minuti")
	if !r.event("maintenance_locked") {
		t.Fatal("no event for the lock")
	}
	r.advanceUntil("Inserire la tessera", time.Second)
	r.panel.Type(firmware.MaintSequence)
	r.wait(ctx, "bloccata")
	r.advanceUntil("Inserire la tessera", time.Second)
	r.clock.Advance(maint.LockFor)
	r.login(ctx)
	r.panel.Press(hal.KeyCancel)
	r.wait(ctx, "terminata")
	if n := strings.Count(r.logs.String(), "action=login_failed"); n != maint.MaxFailures {
		t.Fatalf("%d failures audited", n)
	}
}

// With the clock unsynchronised the panel asks for the hub's unlock
// code instead of a TOTP: accepted once; a code for another totem is
// refused.
func TestMaintenanceUnlockCode(t *testing.T) {
	ctx := ctxT(t)
	r := startMaintSynced(t, false)
	r.wait(ctx, "Inserire la tessera")
	enter := func(code string) {
		r.panel.Type(firmware.MaintSequence)
		r.run(ctx, []step{{"Numero tecnico:", "1001#"}, {"codice di sblocco", code + "#"}})
	}
	other := techset.UnlockCode(r.hub.UnlockKey("t-other"), "t-other", "1001", time.Now())
	enter(other)
	r.wait(ctx, "non valido.")
	r.panel.Press('D')
	r.wait(ctx, "Inserire la tessera")
	code := techset.UnlockCode(r.hub.UnlockKey("t-print"), "t-print", "1001", time.Now())
	enter(code)
	r.wait(ctx, "1 Stampante")
	r.panel.Press('D')
	r.wait(ctx, "terminata")
	r.advanceUntil("Inserire la tessera", time.Second)
	enter(code)
	r.wait(ctx, "Codice già usato")
	if !strings.Contains(r.logs.String(), "action=session_start detail=unlock_code") {
		t.Fatal("session by unlock code not audited")
	}
}

// typeCode returns the keys that type code by multi-tap on the
// maintenance menu's enrollment screen.
func typeCode(code string) string {
	taps := []string{"0", "1", "2ABC", "3DEF", "4GHI", "5JKL", "6MNO", "7PQRS", "8TUV", "9WXYZ"}
	var keys strings.Builder
	last := byte(0)
	for i := 0; i < len(code); i++ {
		for k, set := range taps {
			n := strings.IndexByte(set, code[i])
			if n < 0 {
				continue
			}
			key := byte('0' + k)
			if key == last {
				keys.WriteByte('C')
			}
			for j := 0; j <= n; j++ {
				keys.WriteByte(key)
			}
			last = key
			break
		}
	}
	return keys.String()
}

// The other functions of the menu: the link and clock pages in words, an
// enrollment code typed by multi-tap and handed over, refused, and the
// credentials test's verdict.
func TestMaintenanceMenuFunctions(t *testing.T) {
	ctx := ctxT(t)
	var mu sync.Mutex
	var codes []string
	r := startMaintWith(t, func(o *firmware.Options) {
		o.Diag = func() firmware.Diagnostics {
			return firmware.Diagnostics{Broker: "hub.asl.example:8883", TLS: true, LastError: "locked"}
		}
		o.Enroll = func(_ context.Context, code string) error {
			mu.Lock()
			defer mu.Unlock()
			codes = append(codes, code)
			if len(codes) == 1 {
				return &enroll.Error{Reason: enroll.ReasonExpired, Msg: "expired"}
			}
			return nil
		}
		o.TestCredentials = func(context.Context) string { return "acl" }
	})
	r.login(ctx)

	r.panel.Press('3')
	r.run(ctx, []step{{"Hub: non collegato", ""}, {"hub.asl.example:8883", "#"}, {"NON sincronizzato", ""},
		{"Scarto hub: n.d.", "#"}, {"credenziali bloccate", ""}, {"(sblocco da ops)", "#"}})
	r.wait(ctx, "1 Stampante")

	const code = "XK7PQ2MZ9ABC"
	for i, want := range []string{"Codice non accettato", "Credenziali salvate."} {
		r.panel.Press('5')
		r.run(ctx, []step{{"Codice attivazione:", typeCode(code)}, {"XK7P-Q2MZ-9ABC", "#"}})
		r.wait(ctx, want)
		mu.Lock()
		if len(codes) != i+1 || codes[i] != code {
			t.Fatalf("enrollment codes handed over: %q", codes)
		}
		mu.Unlock()
		r.panel.Press('*')
		if i == 0 {
			r.wait(ctx, "1 Stampante")
		}
	}
	r.wait(ctx, "1 Stampante")
	r.panel.Press('6')
	r.run(ctx, []step{{"Test credenziali: KO", ""}, {"permessi dei topic", "#"}, {"1 Stampante", "D"}})
	r.wait(ctx, "terminata")
	logs := r.logs.String()
	mustContain(t, "audit", logs, "detail=\"refused: expired\"", "detail=credentials_saved", "detail=\"ko: acl\"")
	if strings.Contains(logs, code) {
		t.Error("the enrollment code is in the log")
	}
}

// resender is a link that records resends.
type resender struct {
	mu  sync.Mutex
	ids []string
}

func (l *resender) Resend(_ context.Context, id string) (outbox.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, id)
	return outbox.Entry{ID: id}, nil
}

func (l *resender) Void(context.Context, string) (outbox.Entry, error) { return outbox.Entry{}, nil }

func (l *resender) Ledger(context.Context, uint64, int) (*protocol.Ledger, error) {
	return nil, firmware.ErrNoLink
}

// The queue page counts what waits and what is stuck; 1 resends the
// quarantined entries through the link; # summarises the send log.
func TestMaintenanceQueueResend(t *testing.T) {
	ctx := ctxT(t)
	link := &resender{}
	var stuck outbox.Entry
	r := startMaintWith(t, func(o *firmware.Options) {
		now := time.Now()
		var err error
		if stuck, err = o.Outbox.Enqueue(cms.KindPINChange, []byte(`{}`), now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if rep, err := o.Outbox.Sweep(now); err != nil || rep.Expired != 1 {
			t.Fatalf("sweep %+v %v", rep, err)
		}
		if _, err := o.Outbox.Enqueue(cms.KindPINChange, []byte(`{}`), now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		o.Link = func() firmware.Link { return link }
	})
	r.login(ctx)
	r.panel.Press('4')
	r.run(ctx, []step{{"Quarantena: 1", "1"}})
	r.wait(ctx, "Reinviate: 1")
	link.mu.Lock()
	if len(link.ids) != 1 || link.ids[0] != stuck.ID {
		t.Fatalf("resent %q, want the quarantined %s", link.ids, stuck.ID)
	}
	link.mu.Unlock()
	r.panel.Press('#')
	r.run(ctx, []step{{"In coda:", "#"}, {"in attesa: 2", "#"}})
	r.wait(ctx, "1 Stampante")
	if !strings.Contains(r.logs.String(), "action=resend_stuck detail=\"resent=1 failed=0\"") {
		t.Fatal("resend not audited")
	}
}

// With the audit on (totemd's setting), a maintenance session at the
// panel — entry, leaving — goes to the outbox as audit entries for the
// hub, under the technician's number, never the name.
func TestMaintenanceAudited(t *testing.T) {
	ctx := ctxT(t)
	r := startMaintWith(t, func(o *firmware.Options) { o.Audit = true })
	r.login(ctx)
	r.panel.Type("D")
	r.wait(ctx, "terminata")
	var actions []string
	haltest.Until(t, ctx, "session_end audited", func() bool {
		actions = actions[:0]
		es, err := r.box.Pending(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Kind != "audit" {
				continue
			}
			var a protocol.AuditEntry
			if err := json.Unmarshal(e.Payload, &a); err != nil {
				t.Fatal(err)
			}
			if a.Actor != "tech:1001" || strings.Contains(string(e.Payload), "Tecnico") {
				t.Fatalf("audit entry %s", e.Payload)
			}
			actions = append(actions, a.Action)
		}
		return slices.Contains(actions, "session_end")
	})
	if !slices.Contains(actions, "session_start") || !slices.Contains(actions, "session_end") {
		t.Fatalf("audited actions %v, want session_start and session_end", actions)
	}
}
