package firmware_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
)

// printerRig is the firmware printing through the real ESC/POS driver over
// a pty to the virtual printer.
type printerRig struct {
	*totem
	vp    *vprinter.VPrinter
	shown *shownScreens // every screen shown on the panel
}

// startWithVPrinter starts the rig; each of opts may change the App's
// options (the outbox and the logger are set) before it starts.
func startWithVPrinter(t *testing.T, opts ...func(*firmware.Options)) *printerRig {
	t.Helper()
	dir := t.TempDir()
	vp, err := vprinter.Start(filepath.Join(dir, "paper"))
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := escpos.ProfileByName("tm-t20")
	port, err := escpos.OpenSerial(vp.TTY(), prof.Baud)
	if err != nil {
		t.Fatal(err)
	}
	drv := escpos.New(port, prof, escpos.Options{StatusTimeout: 300 * time.Millisecond})
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tt := &totem{t: t, box: box, reader: sim.NewReader("sim"), panel: sim.NewPanel(20, 4)}
	_, log := newLog()
	var app *firmware.App
	jobs, err := printq.Open(filepath.Join(dir, "jobs.db"), drv, printq.Options{Poll: 50 * time.Millisecond,
		OnStatus: func(err error) { app.PrinterStatus(err) }, OnPaper: func(low bool) { app.PaperNearEnd(low) }})
	if err != nil {
		t.Fatal(err)
	}
	o := firmware.Options{Totem: "t-print", ASL: "ASL", Location: "Atrio", Outbox: box, Jobs: jobs, Logger: log,
		ResultWait: 50 * time.Millisecond, IdleTimeout: time.Minute}
	for _, f := range opts {
		f(&o)
	}
	shown := &shownScreens{Display: tt.panel}
	app = firmware.New(firmware.Devices{Reader: tt.reader, Printer: drv, Keypad: tt.panel, Display: shown}, o)
	tt.app, tt.jobs = app, jobs
	if c, ok := o.Clock.(*haltest.Clock); ok {
		tt.clock = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		jobs.Close()
		box.Close()
		drv.Close()
		port.Close()
		vp.Close()
	})
	return &printerRig{totem: tt, vp: vp, shown: shown}
}

// complete returns the receipts that came out whole (up to the closing
// line), as text.
func (r *printerRig) complete() []string {
	var out []string
	for _, rc := range r.vp.Receipts() {
		if txt := rc.Text(48); rc.Cut && !rc.Interrupted && strings.Contains(txt, "Conservare la ricevuta") {
			out = append(out, txt)
		}
	}
	return out
}

// waitComplete waits for n complete receipts, then until the print queue
// is empty (nothing more may come), and returns the complete receipts.
func (r *printerRig) waitComplete(ctx context.Context, n int) []string {
	r.t.Helper()
	haltest.Until(r.t, ctx, fmt.Sprintf("%d complete receipts", n), func() bool { return len(r.complete()) >= n })
	r.printQueueEmpty(ctx)
	return r.complete()
}

func TestPrinterFaultsThenRecovery(t *testing.T) {
	tests := []struct {
		name    string
		fault   func(vp *vprinter.VPrinter)
		screen  string // what the citizen is told
		tel     string // what telemetry says
		reprint bool   // bytes went out before the fault
	}{
		{"paper out mid-job", func(vp *vprinter.VPrinter) { vp.SetConditionAfter(vp.Received()+300, vprinter.PaperOut) },
			"carta esaurita", "paper_out", true},
		{"cover open", func(vp *vprinter.VPrinter) { vp.SetCondition(vprinter.CoverOpen) }, "coperchio aperto", "cover_open", false},
		{"switched off", func(vp *vprinter.VPrinter) { vp.SetCondition(vprinter.Silent) }, "non risponde", "not_responding", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			r := startWithVPrinter(t)
			tc.fault(r.vp)
			r.consentFlow(ctx)
			r.wait(ctx, tc.screen)
			if got := r.app.Telemetry().Devices["printer"]; got != tc.tel {
				t.Fatalf("telemetry printer = %q, want %q", got, tc.tel)
			}
			if n := len(r.complete()); n != 0 {
				t.Fatalf("%d complete receipts while the printer is down", n)
			}
			r.vp.SetCondition(vprinter.OK)
			got := r.waitComplete(ctx, 1)
			if len(got) != 1 {
				t.Fatalf("%d complete receipts after recovery, want exactly 1", len(got))
			}
			if strings.Contains(got[0], "RISTAMPA") != tc.reprint {
				t.Fatalf("reprint mark = %v, want %v:\n%s", !tc.reprint, tc.reprint, got[0])
			}
			if !strings.Contains(got[0], "RICEVUTA PROVVISORIA") || !strings.Contains(got[0], "RSS**********01U") {
				t.Fatalf("receipt:\n%s", got[0])
			}
			haltest.Until(t, ctx, "telemetry back to ok", func() bool { return r.app.Telemetry().Devices["printer"] == "ok" })
		})
	}
}
