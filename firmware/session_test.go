package firmware_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal"
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
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tt := &totem{t: t, box: box, reader: sim.NewReader("sim"), printer: sim.NewPrinter(""), panel: sim.NewPanel(20, 4)}
	_, log := newLog()
	var app *firmware.App
	jobs, err := printq.Open(filepath.Join(t.TempDir(), "jobs.db"), tt.printer, printq.Options{Poll: 20 * time.Millisecond,
		OnStatus: func(err error) { app.PrinterStatus(err) }})
	if err != nil {
		t.Fatal(err)
	}
	app = firmware.New(firmware.Devices{Reader: tt.reader, Printer: tt.printer, Keypad: tt.panel, Display: tt.panel},
		firmware.Options{Totem: "t-local", ASL: "ASL", Location: "Atrio", Outbox: box, Jobs: jobs, Logger: log,
			ResultWait: 50 * time.Millisecond, IdleTimeout: idle, Online: online})
	tt.app = app
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

func TestIdleTimeoutClearsScreen(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, 400*time.Millisecond)
	l.consentFlow(ctx)
	l.wait(ctx, "Operazione salvata")
	// The card stays in; nobody touches anything.
	l.wait(ctx, "Rimuovere la")
	if s := l.panel.Text(); strings.Contains(s, "Operazione") || strings.Contains(s, "ricevuta") {
		t.Fatalf("session detail left on screen: %q", s)
	}
	l.reader.Remove()
	l.wait(ctx, "Inserire la tessera")

	// A session abandoned halfway: warning first, then the session ends.
	l.reader.Insert(testCard())
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press('1')
	l.wait(ctx, "PIN:")
	l.panel.Type("973")
	l.wait(ctx, "premere")
	l.wait(ctx, "Rimuovere la")
	if s := l.panel.Text(); strings.Contains(s, "*") || strings.Contains(s, "PIN") {
		t.Fatalf("PIN entry left on screen: %q", s)
	}
	if q, _ := l.box.Stats(); q.Depth != 1 {
		t.Fatalf("abandoned session queued something: %+v", q)
	}
}

func TestKeyDismissesIdleWarning(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, 800*time.Millisecond)
	l.reader.Insert(testCard())
	l.wait(ctx, "1 Consensi FSE")
	l.wait(ctx, "premere")
	l.panel.Press('5') // only dismisses the warning
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press('1')
	l.wait(ctx, "PIN:")
}

func TestCardYankedMidFlow(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.reader.Insert(testCard())
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press('1')
	l.wait(ctx, "PIN:")
	l.panel.Type(testPIN)
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "Consenso 1 di 2")
	l.reader.Remove()
	l.wait(ctx, "Inserire la tessera")
	if q, _ := l.box.Stats(); q.Depth != 0 || q.LastSeq != 0 {
		t.Fatalf("a yanked session left an operation: %+v", q)
	}
	// The next citizen is served normally.
	l.consentFlow(ctx)
	l.wait(ctx, "Operazione salvata")
}

func TestWrongPINAndBlocked(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.reader.Insert(testCard())
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press('1')
	l.wait(ctx, "PIN:")
	l.panel.Type("11111")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "Tentativi rimasti:2")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "PIN: ")
	l.panel.Type("11111")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "ultimo") // the last try is announced before it is used
	l.panel.Press(hal.KeyOK)
	l.panel.Type("11111")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "PIN bloccato")
	l.reader.Remove()
	l.wait(ctx, "Inserire la tessera")
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
	for i := 0; len(l.printer.Receipts()) == 0; i++ {
		if i > 300 {
			t.Fatal("receipt never printed after the paper came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	r := l.printer.Receipts()
	if len(r) != 1 || strings.Contains(r[0], "RISTAMPA") || !strings.Contains(r[0], "RICEVUTA PROVVISORIA") {
		t.Fatalf("receipts after recovery: %q", r)
	}
	if tel := l.app.Telemetry(); tel.Devices["printer"] != "ok" {
		t.Fatalf("telemetry printer after recovery = %q", tel.Devices["printer"])
	}
}

func TestStoreFailureIsTold(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.reader.Insert(testCard())
	l.wait(ctx, "1 Consensi FSE")
	l.box.Close() // the store fails under the firmware's feet
	l.panel.Press('1')
	l.wait(ctx, "PIN:")
	l.panel.Type(testPIN)
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "Consenso 1 di 2")
	l.panel.Press('1')
	l.wait(ctx, "Consenso 2 di 2")
	l.panel.Press('1')
	l.wait(ctx, "Riepilogo")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "Operazione NON")
	if n := len(l.printer.Receipts()); n != 0 {
		t.Fatalf("%d receipts printed for an operation that was not saved", n)
	}
}

func TestBackAndCancel(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.reader.Insert(testCard())
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press('1')
	l.wait(ctx, "PIN:")
	l.panel.Press(hal.KeyBack) // empty PIN: back to the menu
	l.wait(ctx, "1 Consensi FSE")
	l.panel.Press('1')
	l.panel.Type(testPIN)
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "Consenso 1 di 2")
	l.panel.Press('2')
	l.wait(ctx, "Consenso 2 di 2")
	l.panel.Press('1')
	l.wait(ctx, "Riepilogo")
	l.panel.Press('7') // not bound on the summary: nothing happens
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "Consenso 2 di 2")
	l.panel.Press(hal.KeyBack)
	l.wait(ctx, "Consenso 1 di 2")
	l.panel.Press(hal.KeyCancel)
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
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	r := &flaky{Reader: sim.NewReader("sim")}
	panel := sim.NewPanel(20, 4)
	var mu sync.Mutex
	var events []string
	_, log := newLog()
	app := firmware.New(firmware.Devices{Reader: r, Printer: sim.NewPrinter(""), Keypad: panel, Display: panel},
		firmware.Options{Totem: "t", ASL: "A", Location: "L", Outbox: box, Logger: log,
			Events: func(e protocol.Event) { mu.Lock(); events = append(events, e.Code); mu.Unlock() }})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(rctx) }()
	defer func() { cancel(); <-done }()
	if _, err := panel.WaitFor(ctx, "Inserire la tessera"); err != nil {
		t.Fatal(err)
	}
	r.down.Store(true) // pcscd goes away: the health check notices
	if _, err := panel.WaitFor(ctx, "Servizio sospeso"); err != nil {
		t.Fatal(err)
	}
	if got := app.Telemetry().Devices["reader"]; got != "gone" {
		t.Fatalf("telemetry reader = %q", got)
	}
	r.down.Store(false)
	if _, err := panel.WaitFor(ctx, "Inserire la tessera"); err != nil {
		t.Fatal(err)
	}
	if got := app.Telemetry().Devices["reader"]; got != "ok" {
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
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	p := &beeping{Panel: sim.NewPanel(20, 4)}
	r := sim.NewReader("sim")
	_, log := newLog()
	app := firmware.New(firmware.Devices{Reader: r, Printer: sim.NewPrinter(""), Keypad: p, Display: p},
		firmware.Options{Totem: "t", ASL: "A", Location: "L", Outbox: box, Logger: log})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(rctx) }()
	defer func() { cancel(); <-done }()
	r.Insert(testCard())
	if _, err := p.WaitFor(ctx, "1 Consensi FSE"); err != nil {
		t.Fatal(err)
	}
	p.Press('1')
	if _, err := p.WaitFor(ctx, "PIN:"); err != nil {
		t.Fatal(err)
	}
	p.Press('9', '7')
	if _, err := p.WaitFor(ctx, "PIN: **"); err != nil {
		t.Fatal(err)
	}
	if n := p.n.Load(); n != 3 {
		t.Fatalf("%d beeps for 3 keys", n)
	}
}

func TestReaderRequestOffline(t *testing.T) {
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.reader.Insert(testCard())
	l.wait(ctx, "2 Richiesta lettore")
	l.panel.Press('2')
	l.wait(ctx, "n. ricevuta")
	l.panel.Type("12")
	l.panel.Press(hal.KeyOK) // too short: nothing happens
	l.panel.Type("3456")
	l.wait(ctx, "123456")
	l.panel.Press(hal.KeyOK)
	l.wait(ctx, "Operazione salvata")
	for i := 0; len(l.printer.Receipts()) == 0; i++ {
		if i > 300 {
			t.Fatal("no receipt")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := strings.Join(strings.Fields(l.printer.Receipts()[0]), " ")
	if !strings.Contains(r, "Richiesta lettore") || !strings.Contains(r, "Ricevuta di pagamento: 123456 (4,20 €)") {
		t.Fatalf("receipt: %s", r)
	}
	if q, _ := l.box.Stats(); q.Depth != 1 {
		t.Fatalf("queue %+v", q)
	}
}

func TestChangePIN(t *testing.T) {
	ctx := ctxT(t)
	lb, log := newLog()
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	r := sim.NewReader("sim")
	panel := sim.NewPanel(20, 4)
	printer := sim.NewPrinter("")
	app := firmware.New(firmware.Devices{Reader: r, Printer: printer, Keypad: panel, Display: panel},
		firmware.Options{Totem: "t", ASL: "A", Location: "L", Outbox: box, Logger: log, ResultWait: 50 * time.Millisecond})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(rctx) }()
	defer func() { cancel(); <-done }()
	wait := func(s string) {
		t.Helper()
		if _, err := panel.WaitFor(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	card := testCard()
	r.Insert(card)
	wait("3 Cambio PIN")
	panel.Press('3')
	wait("Digitare il PIN")
	panel.Type(testPIN)
	panel.Press(hal.KeyOK)
	wait("Nuovo PIN")
	panel.Type("24681357")
	panel.Press(hal.KeyOK)
	wait("Ripetere")
	panel.Type("24681350") // a typo
	panel.Press(hal.KeyOK)
	wait("non")
	panel.Press(hal.KeyOK)
	wait("Nuovo PIN")
	panel.Type("24681357")
	panel.Press(hal.KeyOK)
	wait("Ripetere")
	panel.Type("24681357")
	panel.Press(hal.KeyOK)
	wait("Operazione salvata")
	if card.PIN != "24681357" {
		t.Fatal("the chip's PIN did not change")
	}
	r.Remove()
	wait("Inserire la tessera")
	// The old PIN no longer works; the event was queued, with no PIN in it.
	r.Insert(card)
	wait("3 Cambio PIN")
	panel.Press('3')
	wait("Digitare il PIN")
	panel.Type(testPIN)
	panel.Press(hal.KeyOK)
	wait("Nuovo PIN")
	panel.Type("11223344")
	panel.Press(hal.KeyOK)
	wait("Ripetere")
	panel.Type("11223344")
	panel.Press(hal.KeyOK)
	wait("Tentativi rimasti:2")
	if q, _ := box.Stats(); q.LastSeq != 1 {
		t.Fatalf("queued %d events, want 1 (the successful change)", q.LastSeq)
	}
	pend, _ := box.Pending(0, 10)
	if len(pend) != 1 || pend[0].Kind != "pin_change" {
		t.Fatalf("pending %+v", pend)
	}
	for _, secret := range []string{testPIN, "24681357", "11223344", "24681350"} {
		if strings.Contains(string(pend[0].Payload), secret) || strings.Contains(lb.String(), secret) {
			t.Fatalf("PIN %s left the chip path", secret)
		}
		for _, rc := range printer.Receipts() {
			if strings.Contains(rc, secret) {
				t.Fatalf("PIN %s on a receipt", secret)
			}
		}
	}
}
