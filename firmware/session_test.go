package firmware_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// local runs the firmware with simulated devices and no uplink: what a
// totem does while the hub is unreachable.
type local struct {
	*totem
	done chan error
}

func startLocal(t *testing.T, idle time.Duration) *local {
	t.Helper()
	return startLocalWith(t, idle, nil)
}

// startLocalWith is startLocal with Options.Online set to online.
func startLocalWith(t *testing.T, idle time.Duration, online func() bool) *local {
	t.Helper()
	return startLocalOpts(t, localOpts{idle: idle, online: online})
}

// localOpts changes what startLocalOpts wires: zero values keep the
// simulated reader and panel, a one-minute idle timeout and a fresh log.
type localOpts struct {
	idle     time.Duration
	opIdle   time.Duration // Options.OperatorTimeout
	online   func() bool
	events   func(protocol.Event)
	log      *slog.Logger
	reader   func(*sim.Reader) hal.CardReader // wraps the simulated reader
	keypad   hal.Keypad                       // both default to the sim panel
	display  hal.Display
	speaker  hal.Speaker // none by default
	keyboard hal.Keypad  // none by default
	// reissueCounter is Options.ReissueCounter.
	reissueCounter bool
	// box opens the outbox with these options (quotas) instead of none.
	box *outbox.Options
	// audit is Options.Audit: people's actions queued for the hub's audit.
	audit bool
	// resultWait is Options.ResultWait (default 50ms).
	resultWait time.Duration
	// link is Options.Link.
	link func() firmware.Link
	// lang is Options.Lang, the language a session starts in.
	lang firmware.Lang
	// clock is Options.Clock, which the test advances (nil: the real
	// clock): every wait of the App, idle timeouts included, is on it.
	// With it the heartbeat is 10ms (Options.Heartbeat), so that every
	// step of advanceUntil wakes the session loop's waits.
	clock *haltest.Clock
}

// startLocalOpts runs the firmware with simulated devices, an outbox and a
// print queue, and no uplink; the test's cleanup stops it and checks that
// the display was left "fuori servizio".
func startLocalOpts(t *testing.T, o localOpts) *local {
	t.Helper()
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), o.box)
	if err != nil {
		t.Fatal(err)
	}
	tt := &totem{t: t, box: box, reader: sim.NewReader("sim"), printer: sim.NewPrinter(""), panel: sim.NewPanel(20, 4)}
	if o.idle == 0 {
		o.idle = time.Minute
	}
	if o.log == nil {
		_, o.log = newLog()
	}
	dev := firmware.Devices{Reader: tt.reader, Printer: tt.printer, Keypad: tt.panel, Display: tt.panel}
	if o.reader != nil {
		dev.Reader = o.reader(tt.reader)
	}
	if o.keypad != nil {
		dev.Keypad = o.keypad
	}
	if o.display != nil {
		dev.Display = o.display
	}
	dev.Speaker, dev.Keyboard = o.speaker, o.keyboard
	var app *firmware.App
	jobs, err := printq.Open(filepath.Join(t.TempDir(), "jobs.db"), tt.printer, printq.Options{Poll: 20 * time.Millisecond,
		OnStatus: func(err error) { app.PrinterStatus(err) }})
	if err != nil {
		t.Fatal(err)
	}
	if o.resultWait == 0 {
		o.resultWait = 50 * time.Millisecond
	}
	fo := firmware.Options{Totem: "t-local", ASL: "ASL", Location: "Atrio", Outbox: box, Jobs: jobs,
		Logger: o.log, ResultWait: o.resultWait, IdleTimeout: o.idle, OperatorTimeout: o.opIdle, Online: o.online,
		Events: o.events, ReissueCounter: o.reissueCounter, Audit: o.audit, Link: o.link, Lang: o.lang}
	if o.clock != nil {
		fo.Clock, fo.Heartbeat = o.clock, 10*time.Millisecond
	}
	app = firmware.New(dev, fo)
	tt.app = app
	tt.clock, tt.jobs = o.clock, jobs
	ctx, cancel := context.WithCancel(context.Background())
	l := &local{totem: tt, done: make(chan error, 1)}
	tt.cancel = cancel
	go func() { l.done <- tt.app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-l.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if got := tt.panel.Text(); !strings.Contains(got, "Fuori servizio") {
			t.Errorf("after stop the display shows %q", got)
		}
		box.Close()
		jobs.Close()
	})
	return l
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// advanceUntil moves the App's clock by step until the panel shows
// substr. A wait arms its timer after the screen it shows, so the clock
// moves in steps, and after each the session loop is given to reach a
// wait again: it records the heartbeat a step sends (Progress) only in
// its waits, and the next heartbeat is armed before one is sent. step
// must not be shorter than the App's heartbeat.
func (tt *totem) advanceUntil(substr string, step time.Duration) {
	tt.t.Helper()
	ctx := ctxT(tt.t)
	for !strings.Contains(tt.panel.Text(), substr) {
		if ctx.Err() != nil {
			tt.t.Fatalf("screen never showed %q:\n%s", substr, tt.panel.Text())
		}
		if tt.clock.Advance(step) == 0 {
			continue // nothing woke: the wait for substr is not armed yet
		}
		now := tt.clock.Now()
		haltest.Until(tt.t, ctx, fmt.Sprintf("the session loop waiting again after the clock moved to %v (for %q; %d waits pending)",
			now, substr, tt.clock.Pending()), func() bool { return !tt.app.Progress().Before(now) })
	}
}

// receipts waits until the printer has printed n receipts and returns
// them all.
func (tt *totem) receipts(ctx context.Context, n int) []string {
	tt.t.Helper()
	r, err := tt.printer.WaitReceipts(ctx, n)
	if err != nil {
		tt.t.Fatal(err)
	}
	return r
}

// noReceiptQueued fails the test if any receipt went to the print queue:
// the App queues a receipt before the screen that follows it, so at a
// screen that waits for the citizen nothing more comes of what came
// before.
func (tt *totem) noReceiptQueued(why string) {
	tt.t.Helper()
	jobs, err := tt.jobs.List(10)
	if err != nil || len(jobs) != 0 {
		tt.t.Fatalf("%d receipts queued %s (%v)", len(jobs), why, err)
	}
}

// printedAll waits until the print queue holds nothing for the printer
// and returns every receipt printed: what the App has queued so far is
// all out, nothing more comes of it.
func (tt *totem) printedAll(ctx context.Context) []string {
	tt.t.Helper()
	tt.printQueueEmpty(ctx)
	return tt.printer.Receipts()
}

// printQueueEmpty waits until the print queue holds nothing for the
// printer.
func (tt *totem) printQueueEmpty(ctx context.Context) {
	tt.t.Helper()
	haltest.Until(tt.t, ctx, "the print queue emptied", func() bool { n, err := tt.jobs.Pending(); return err == nil && n == 0 })
}

// The idle timeout (one minute, on the clock the test advances) first
// warns, then ends the session with nothing of it left on screen.
func TestIdleTimeoutClearsScreen(t *testing.T) {
	ctx := ctxT(t)
	l := startLocalOpts(t, localOpts{clock: haltest.NewClock(time.Now())})
	l.consentFlow(ctx)
	l.advanceUntil("Salvata: l'esito", 10*time.Millisecond) // the result wait, no hub
	// The card stays in; nobody touches anything.
	l.advanceUntil("Serve altro tempo?", 5*time.Second)
	l.advanceUntil("Rimuovere la", 5*time.Second)
	if s := l.panel.Text(); strings.Contains(s, "Operazione") || strings.Contains(s, "ricevuta") {
		t.Fatalf("session detail left on screen: %q", s)
	}
	l.remove(ctx)

	// A session abandoned halfway: warning first, then the session ends.
	l.reader.Insert(testCard())
	l.run(ctx, []step{{"1 Consensi FSE", "1"}, {"PIN:", "973"}})
	l.wait(ctx, "PIN: ***")
	l.advanceUntil("Serve altro tempo?", 5*time.Second)
	l.advanceUntil("Rimuovere la", 5*time.Second)
	if s := l.panel.Text(); strings.Contains(s, "*") || strings.Contains(s, "PIN") {
		t.Fatalf("PIN entry left on screen: %q", s)
	}
	if q, _ := l.box.Stats(); q.Depth != 1 {
		t.Fatalf("abandoned session queued something: %+v", q)
	}
}

func TestKeyDismissesIdleWarning(t *testing.T) {
	ctx := ctxT(t)
	l := startLocalOpts(t, localOpts{clock: haltest.NewClock(time.Now())})
	l.insert(ctx, testCard())
	l.advanceUntil("Serve altro tempo?", 5*time.Second)
	l.panel.Press('5') // only dismisses the warning
	l.run(ctx, []step{{"1 Consensi FSE", "1"}})
	l.wait(ctx, "PIN:")
}

func TestCardYankedMidFlow(t *testing.T) {
	ctx, l := startWithCard(t)
	l.run(ctx, []step{{"1 Consensi FSE", "1"}, {"PIN:", testPIN + "#"}, {"Informativa FSE", "#"}})
	l.wait(ctx, "Consenso 1 di 2")
	l.remove(ctx)
	if q, _ := l.box.Stats(); q.Depth != 0 || q.LastSeq != 0 {
		t.Fatalf("a yanked session left an operation: %+v", q)
	}
	// The next citizen is served normally.
	l.consentFlow(ctx)
	l.wait(ctx, "Salvata: l'esito")
}

func TestWrongPINAndBlocked(t *testing.T) {
	ctx, l := startWithCard(t)
	l.run(ctx, []step{{"1 Consensi FSE", "1"},
		{"PIN:", "1111#"}, // 4 digits: the length is said, no try spent
		{"Servono 5-8 cifre", "#"}, {"PIN: ****", "1#"}, {"Restano 2 tentativi", "#"}, {"PIN: ", "11111#"},
		{"ultimo", "#11111#"}, // the last try is announced before it is used
		{"PIN bloccato", ""}})
	l.remove(ctx)
	if q, _ := l.box.Stats(); q.LastSeq != 0 {
		t.Fatalf("refused PIN queued an operation: %+v", q)
	}
}

func TestPaperOutKeepsOperation(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.printer.SetStatus(hal.PrinterStatus{Online: true, PaperOut: true})
	l.consentFlow(ctx)
	l.wait(ctx, "carta esaurita")
	if q, _ := l.box.Stats(); q.Depth != 1 {
		t.Fatalf("operation lost with the printer down: %+v", q)
	}
	if tel := l.app.Telemetry(); tel.Devices["printer"] != "paper_out" {
		t.Fatalf("telemetry printer = %q", tel.Devices["printer"])
	}
	// Paper back in: the receipt comes out, once, not as a reprint.
	l.printer.SetStatus(hal.PrinterStatus{Online: true})
	l.receipts(ctx, 1)
	r := l.printedAll(ctx) // the queue is empty: no second copy to come
	if len(r) != 1 || strings.Contains(r[0], "RISTAMPA") || !strings.Contains(r[0], "RICEVUTA PROVVISORIA") {
		t.Fatalf("receipts after recovery: %q", r)
	}
	// The queue tells the printer's state once the job is recorded printed.
	haltest.Until(t, ctx, "telemetry printer back to ok after recovery", func() bool { return l.app.Telemetry().Devices["printer"] == "ok" })
}

func TestStoreFailureIsTold(t *testing.T) {
	ctx, l := startWithCard(t)
	l.wait(ctx, "1 Consensi FSE")
	l.box.Close() // the store fails under the firmware's feet
	l.panel.Press('1')
	l.run(ctx, []step{{"PIN:", testPIN + "#"}, {"Informativa FSE", "#"}, {"Consenso 1 di 2", "1"},
		{"Consenso 2 di 2", "1"}, {"Riepilogo", "#"}})
	l.wait(ctx, "Operazione NON")
	if n := len(l.printer.Receipts()); n != 0 {
		t.Fatalf("%d receipts printed for an operation that was not saved", n)
	}
}

func TestBackAndCancel(t *testing.T) {
	ctx, l := startWithCard(t)
	l.run(ctx, []step{{"1 Consensi FSE", "1"},
		{"PIN:", "*"}, // empty PIN: back to the menu
		{"1 Consensi FSE", "1" + testPIN + "#"}, {"Informativa FSE", "#"}, {"Consenso 1 di 2", "2"}, {"Consenso 2 di 2", "1"},
		{"Riepilogo", "7*"}, // 7 is not bound on the summary: nothing happens
		{"Consenso 2 di 2", "*"}, {"Consenso 1 di 2", "D"}})
	l.wait(ctx, "Operazione annullata")
	if q, _ := l.box.Stats(); q.LastSeq != 0 {
		t.Fatalf("cancelled flow queued an operation: %+v", q)
	}
}

// flaky is a reader whose service goes away and comes back, as pcscd does.
type flaky struct {
	*sim.Reader
	down atomic.Bool
}

func (f *flaky) Next(ctx context.Context) (hal.CardEvent, error) {
	if f.down.Load() {
		return hal.CardEvent{}, hal.ErrNoReader
	}
	return f.Reader.Next(ctx)
}

func (f *flaky) Healthy() bool { return !f.down.Load() }

func TestReaderGoneAndBack(t *testing.T) {
	ctx := ctxT(t)
	var r *flaky
	var mu sync.Mutex
	var events []string
	l := startLocalOpts(t, localOpts{
		reader: func(sr *sim.Reader) hal.CardReader { r = &flaky{Reader: sr}; return r },
		events: func(e protocol.Event) { mu.Lock(); events = append(events, e.Code); mu.Unlock() },
	})
	l.wait(ctx, "Inserire la tessera")
	r.down.Store(true) // pcscd goes away: the health check notices
	l.wait(ctx, "Servizio sospeso")
	if got := l.app.Telemetry().Devices["reader"]; got != "gone" {
		t.Fatalf("telemetry reader = %q", got)
	}
	r.down.Store(false)
	l.wait(ctx, "Inserire la tessera")
	if got := l.app.Telemetry().Devices["reader"]; got != "ok" {
		t.Fatalf("telemetry reader after recovery = %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 2 || events[0] != "reader_gone" || events[len(events)-1] != "reader_back" {
		t.Fatalf("events %v", events)
	}
}

// beeping is a panel with the optional Beeper capability.
type beeping struct {
	*sim.Panel
	n atomic.Int64
}

func (b *beeping) Beep() error { b.n.Add(1); return nil }

func TestKeyPressBeeps(t *testing.T) {
	ctx := ctxT(t)
	p := &beeping{Panel: sim.NewPanel(20, 4)}
	l := startLocalOpts(t, localOpts{keypad: p})
	l.insert(ctx, testCard())
	p.Press('1')
	l.wait(ctx, "PIN:")
	p.Press('9', '7')
	l.wait(ctx, "PIN: **")
	if n := p.n.Load(); n != 3 {
		t.Fatalf("%d beeps for 3 keys", n)
	}
}

func TestReaderRequestOffline(t *testing.T) {
	ctx, l := startWithCard(t)
	l.run(ctx, []step{{"2 Richiesta lettore", "2"},
		{"n. ricevuta", "12#"},      // too short: the length expected is said
		{"Servono 6-20 cifre", "#"}, // back to the digits typed so far
		{"n. ricevuta", "3456"}, {"123456", "#"}})
	// The summary before anything is sent (issue 17): * goes back to the
	// number as typed, to correct it; # sends.
	l.wait(ctx, "#=Conferma D=Annulla")
	if n, _ := l.box.Recent(5); len(n) != 0 {
		t.Fatalf("sent before the confirmation: %d", len(n))
	}
	l.panel.Press(hal.KeyBack)
	l.run(ctx, []step{{"n. ricevuta", "*7"}, {"123457", "#"}, {"#=Conferma D=Annulla", "#"}})
	l.wait(ctx, "Salvata: l'esito")
	r := flat(l.receipts(ctx, 1)[0])
	if !strings.Contains(r, "Richiesta lettore") || !strings.Contains(r, "Ricevuta di pagamento: 123457 (4,20 €)") {
		t.Fatalf("receipt: %s", r)
	}
	if q, _ := l.box.Stats(); q.Depth != 1 {
		t.Fatalf("queue %+v", q)
	}
}

func TestChangePIN(t *testing.T) {
	ctx := ctxT(t)
	lb, log := newLog()
	l := startLocalOpts(t, localOpts{log: log})
	r, box, printer := l.reader, l.box, l.printer
	wait := func(s string) { t.Helper(); l.wait(ctx, s) }
	card := testCard()
	r.Insert(card)
	l.run(ctx, []step{{"3 Cambio PIN", "3"}, {"Digitare il PIN", testPIN + "#"}, {"Nuovo PIN", "24681357#"},
		{"Ripetere", "24681350#"}, // a typo
		{"non", "#"}, {"Nuovo PIN", "24681357#"}, {"Ripetere", "24681357#"}})
	wait("Salvata: l'esito")
	if card.PIN != "24681357" {
		t.Fatal("the chip's PIN did not change")
	}
	l.remove(ctx)
	// The old PIN no longer works: it is refused on the chip before the
	// new PIN is asked for, # tries again and D goes back to the menu,
	// with the session open. The event was queued, with no PIN in it.
	r.Insert(card)
	l.run(ctx, cat([]step{{"3 Cambio PIN", "3"}, {"Digitare il PIN", testPIN + "#"},
		{"Restano 2 tentativi", "#"}, // #=Riprova
		{"Digitare il PIN", "11223344#"},
		{"ultimo", "D"}}, // D: the menu, not a dead screen
		pinChangeSteps("24681357", "11223344")))
	wait("Salvata: l'esito")
	if card.PIN != "11223344" {
		t.Fatal("the chip's PIN did not change after a retry")
	}
	if q, _ := box.Stats(); q.LastSeq != 2 {
		t.Fatalf("queued %d events, want 2 (the successful changes)", q.LastSeq)
	}
	pend, _ := box.Pending(0, 10)
	if len(pend) != 2 || pend[0].Kind != "pin_change" || pend[1].Kind != "pin_change" {
		t.Fatalf("pending %+v", pend)
	}
	for _, secret := range []string{testPIN, "24681357", "11223344", "24681350"} {
		if strings.Contains(string(pend[0].Payload)+string(pend[1].Payload), secret) || strings.Contains(lb.String(), secret) {
			t.Fatalf("PIN %s left the chip path", secret)
		}
		for _, rc := range printer.Receipts() {
			if strings.Contains(rc, secret) {
				t.Fatalf("PIN %s on a receipt", secret)
			}
		}
	}
}

// An outbox at its quota refuses the citizen's operation: the panel says
// it was NOT registered because the memory is full (not a totem fault),
// nothing is stored and no receipt is printed.
func TestQueueFullAtThePanel(t *testing.T) {
	ctx := ctxT(t)
	lb, log := newLog()
	l := startLocalOpts(t, localOpts{log: log, box: &outbox.Options{MaxPending: 1}})
	if _, err := l.box.Enqueue("consent", []byte(`{}`), time.Now(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	l.consentFlow(ctx)
	l.wait(ctx, "NON registrata:")
	got := l.panel.Text()
	if !strings.Contains(got, "memoria piena.") || !strings.Contains(got, "sportello") || strings.Contains(got, "guasto") {
		t.Fatalf("panel shows %q", got)
	}
	q, err := l.box.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if q.LastSeq != 1 || q.Depth != 1 {
		t.Fatalf("the refused operation was stored: %+v", q)
	}
	if n := len(l.printer.Receipts()); n != 0 {
		t.Fatalf("%d receipts printed for an operation not registered", n)
	}
	if !strings.Contains(lb.String(), "outbox full") {
		t.Fatalf("no log line for the refusal:\n%s", lb.String())
	}
	checkLogs(t, lb)
}

// The outbox's quota alarm reaches the technician: an "outbox_quota"
// event when usage reaches the threshold, the usage in telemetry, and
// "outbox_quota_ok" once the hub has drained it.
func TestOutboxQuotaAlarm(t *testing.T) {
	ctx := ctxT(t)
	var app atomic.Pointer[firmware.App]
	events := make(chan protocol.Event, 16)
	l := startLocalOpts(t, localOpts{
		events: func(e protocol.Event) { events <- e },
		box: &outbox.Options{MaxPending: 5, AlarmAt: 0.6, OnAlarm: func(u outbox.Usage) {
			if a := app.Load(); a != nil {
				a.OutboxAlarm(u)
			}
		}},
	})
	app.Store(l.app)
	next := func() protocol.Event { t.Helper(); return haltest.Recv(t, ctx, events, "an event") }
	var ids []string
	for range 3 {
		e, err := l.box.Enqueue("consent", []byte(`{}`), time.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if e := next(); e.Code != "outbox_quota" || e.Level != protocol.LevelAlarm || !strings.Contains(e.Message, "60%") {
		t.Fatalf("event %+v", e)
	}
	st := l.app.Telemetry().Storage
	if st == nil || !st.Alarm || st.Pending != 3 || st.MaxPending != 5 || st.Fraction < 0.6 {
		t.Fatalf("telemetry storage %+v", st)
	}
	for i, id := range ids { // the hub answers them
		if _, err := l.box.Record(&protocol.Result{OpID: id, Seq: uint64(i + 1),
			Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: fmt.Sprintf("P%d", i), At: time.Now()},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}); err != nil {
			t.Fatal(err)
		}
	}
	if e := next(); e.Code != "outbox_quota_ok" || e.Level != protocol.LevelInfo {
		t.Fatalf("event %+v", e)
	}
	if st := l.app.Telemetry().Storage; st.Alarm || st.Pending != 0 {
		t.Fatalf("telemetry storage after the drain %+v", st)
	}
}

// After an outcome the session stays open (issue 17): # offers the menu
// again and the PIN verified for the first operation holds for the next;
// a definitive outcome arriving while the citizen is still there replaces
// the provisional one on screen and its receipt is printed; D ends the
// session.
func TestAnotherOperationAndLateOutcome(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.consentFlow(ctx)
	l.wait(ctx, "#=Altra operazione")
	entries, err := l.box.Recent(1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox %v %v", entries, err)
	}
	// The hub's answer comes while the provisional outcome is on screen:
	// recorded in the outbox, then handed to the App, as the uplink does
	// (the session may not be waiting yet: it reads the outbox then).
	e := entries[0]
	res := &protocol.Result{OpID: e.ID, Seq: e.Seq,
		Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: "261123000000099", At: time.Now()},
		Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}
	if _, err := l.box.Record(res); err != nil {
		t.Fatal(err)
	}
	e.Done, e.Result = true, res
	l.app.Result(e)
	l.wait(ctx, "Esito arrivato:")
	l.wait(ctx, "261123000000099")
	if r := l.receipts(ctx, 2)[1]; !strings.Contains(r, "Protocollo: 261123000000099") || !strings.Contains(r, "Consensi FSE") {
		t.Fatalf("definitive receipt:\n%s", r)
	}
	// Another operation: the menu, and no PIN asked this time.
	l.panel.Press(hal.KeyOK)
	l.run(ctx, []step{{"1 Consensi FSE", "1"}, {"Informativa FSE", "#"}, {"Consenso 1 di 2", "D"}})
	l.wait(ctx, "Operazione annullata")
	// A new card, a new session: the PIN is asked again.
	l.remove(ctx)
	l.reader.Insert(testCard())
	l.run(ctx, []step{{"1 Consensi FSE", "1"}, {"PIN:", "D"}})
	l.wait(ctx, "Operazione annullata")
}

// D on an outcome ends the session with the card and the receipt to take.
func TestOutcomeExit(t *testing.T) {
	ctx := ctxT(t)
	panel := sim.NewPanel(20, 4)
	pad, shown := &keyFeed{Keypad: panel}, &shownScreens{Display: panel}
	l := startLocalOpts(t, localOpts{keypad: pad, display: shown})
	l.panel = panel
	l.consentFlow(ctx)
	l.wait(ctx, "#=Altra operazione")
	l.panel.Press(hal.KeyCancel)
	l.wait(ctx, "Ritirare la tessera")
	from := shown.count()
	pad.press(t, ctx, l.app, hal.KeyOK) // the session is over: no menu; the key reaches the App, with the card still in
	l.remove(ctx)
	// The loop took the key before the card's removal: whatever the key
	// showed came before the idle screen.
	after := shown.since(from)
	for _, s := range after[:len(after)-1] {
		if !strings.Contains(s, "Ritirare la tessera") {
			t.Fatalf("a key after the end of the session opened %q", s)
		}
	}
}

// keyFeed is a keypad that counts the firmware's calls to Next: its key
// feed calls again only once it has handed the key before to the session
// loop.
type keyFeed struct {
	hal.Keypad
	mu      sync.Mutex
	calls   int // calls to Next so far
	keys    int // keys returned so far
	keyCall int // the call that returned the last key
}

func (k *keyFeed) Next(ctx context.Context) (hal.Key, error) {
	k.mu.Lock()
	k.calls++
	call := k.calls
	k.mu.Unlock()
	key, err := k.Keypad.Next(ctx)
	if err == nil {
		k.mu.Lock()
		k.keys, k.keyCall = k.keys+1, call
		k.mu.Unlock()
	}
	return key, err
}

// handedOn reports whether more than n keys were read and the feed came
// back for another after the last.
func (k *keyFeed) handedOn(n int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys > n && k.calls > k.keyCall
}

// press presses key on the panel behind k and waits until app's session
// loop has taken it: the feed came back for another key, and no key
// waits for the loop.
func (k *keyFeed) press(t *testing.T, ctx context.Context, app *firmware.App, key hal.Key) {
	t.Helper()
	k.mu.Lock()
	n := k.keys
	k.mu.Unlock()
	k.Keypad.(*sim.Panel).Press(key)
	haltest.Until(t, ctx, "the key feed handed the key on", func() bool { return k.handedOn(n) })
	haltest.Until(t, ctx, "the session loop took the key", func() bool { return app.KeysQueued() == 0 })
}

// shownScreens records every screen shown, for a test that must see that
// a screen never came (a look after a pause would pass on a slow
// machine).
type shownScreens struct {
	hal.Display
	mu    sync.Mutex
	shown []string
}

func (d *shownScreens) Show(lines []string) error {
	d.mu.Lock()
	d.shown = append(d.shown, strings.Join(lines, "\n"))
	d.mu.Unlock()
	return d.Display.Show(lines)
}

// count is how many screens were shown so far.
func (d *shownScreens) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.shown)
}

// since returns the screens shown after the first n.
func (d *shownScreens) since(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.shown[n:]...)
}

// Each consent has one name, the same on its screen, the summary and the
// receipt, a one-row explanation, and is asked so that 1=Sì gives it: the
// "opposizione" to the data before 2020 is no double negative (issue 17).
func TestConsentWording(t *testing.T) {
	ctx, l := startWithCard(t)
	l.run(ctx, []step{{"1 Consensi FSE", "1"}, {"PIN:", testPIN + "#"}, {"Informativa FSE", "#"}})
	s := l.screenFor(ctx, "Consenso 1 di 2:")
	mustContain(t, "consent 1", s, "Consultazione", "FSE letto dai medici")
	l.panel.Press('1')
	s = l.screenFor(ctx, "Consenso 2 di 2:")
	mustContain(t, "consent 2", s, "Escludi pre-2020", "(nascosti a tutti)")
	l.panel.Press('2')
	s = l.screenFor(ctx, "Riepilogo")
	mustContain(t, "summary", s, "Consultazione: Sì", "Escludi pre-2020: No")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "#=Altra operazione")
	r := flat(l.receipts(ctx, 1)[0])
	mustContain(t, "receipt", r, "Escludi pre-2020 (i dati del Fascicolo anteriori al 19/05/2020 restano nascosti): NO")
	mustNotContain(t, "receipt", r, "Opposizione", "Opp.")
}

// screenFor waits for a screen showing substr and returns it.
func (tt *totem) screenFor(ctx context.Context, substr string) string {
	tt.t.Helper()
	s, err := tt.panel.WaitFor(ctx, substr)
	if err != nil {
		tt.t.Fatal(err)
	}
	return s
}
