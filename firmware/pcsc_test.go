//go:build cgo && pcsc

package firmware_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/drivers/pcsc/pcsctest"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
)

// The PIN tests run the real firmware on the real PC/SC stack: the
// drivers/pcsc Reader on a private pcscd (pcsctest) with a virtual TS-CNS
// card inserted through vpcd, a durable outbox and print queue, receipts
// written to files. Only the panel (keypad and display) is simulated.
// Nothing else in this test binary calls PC/SC, so pcsctest.Start, run
// first by each test, is early enough to point libpcsclite at the
// private pcscd.

// pcscPIN is distinctive, so the scans below cannot match by chance.
const (
	pcscPIN    = "97315824"
	pcscWrong  = "11111111"
	pcscWrong2 = "86420975" // wrong, and distinctive too
)

// pcscTotem is a totem on the real PC/SC stack.
type pcscTotem struct {
	*totem               // the panel and the printer; no simulated reader
	dir    string        // every file the totem writes lives under it
	logs   *synctest.Log // every log line of a run, from every component
	pcscd  *pcsctest.Daemon
	card   *vcard.Card
	halt   func()
}

// startPCSC starts the firmware with the pcsc Reader on a private pcscd
// and the demo citizen's card, whose PIN is pcscPIN, ready to insert.
func startPCSC(t *testing.T) *pcscTotem {
	t.Helper()
	d := pcsctest.Start(t) // first: before any scard call (see pcsctest)
	tt := &pcscTotem{totem: &totem{t: t, panel: sim.NewPanel(20, 4)}, dir: t.TempDir(), pcscd: d}
	var log *slog.Logger
	tt.logs, log = newLog()

	p := profile(t, "cns")
	p.PIN = pcscPIN
	tt.card = vcard.New(p)

	ctx, cancel := context.WithCancel(context.Background())
	reader, err := pcsc.Open(ctx, pcsc.Options{Reader: pcsctest.Reader0, Logger: log.With("subsystem", "pcsc"),
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	box, err := outbox.Open(filepath.Join(tt.dir, "outbox.db"), nil)
	if err != nil {
		cancel()
		reader.Close()
		t.Fatal(err)
	}
	tt.printer = sim.NewPrinter(filepath.Join(tt.dir, "receipts"))
	var app *firmware.App
	jobs, err := printq.Open(filepath.Join(tt.dir, "jobs.db"), tt.printer, printq.Options{Poll: 20 * time.Millisecond,
		Logger: log.With("subsystem", "printq"), OnStatus: func(err error) { app.PrinterStatus(err) }})
	if err != nil {
		cancel()
		reader.Close()
		box.Close()
		t.Fatal(err)
	}
	// No uplink: the hub is unreachable, receipts are provisional.
	app = firmware.New(firmware.Devices{Reader: reader, Printer: tt.printer, Keypad: tt.panel, Display: tt.panel},
		firmware.Options{Totem: "t-pcsc", ASL: "ASL Test", Location: "Atrio", Outbox: box, Jobs: jobs,
			Logger: log.With("subsystem", "firmware"), ResultWait: 50 * time.Millisecond, IdleTimeout: time.Minute})
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	tt.halt = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			tt.card.Remove()
			reader.Close()
			jobs.Close()
			box.Close()
		})
	}
	t.Cleanup(tt.halt)
	return tt
}

// insert puts the card in the reader and opens the Consensi FSE flow up
// to the PIN prompt.
func (tt *pcscTotem) insert(ctx context.Context) {
	tt.t.Helper()
	tt.wait(ctx, "Inserire la tessera")
	if err := tt.pcscd.Insert(ctx, 0, tt.card); err != nil {
		tt.t.Fatal(err)
	}
	tt.run(ctx, []step{{"1 Consensi FSE", "1"}})
	tt.wait(ctx, "PIN:")
}

// enterPIN types pin and confirms it.
func (tt *pcscTotem) enterPIN(ctx context.Context, pin string) {
	tt.t.Helper()
	tt.panel.Type(pin)
	tt.wait(ctx, "PIN: "+strings.Repeat("*", len(pin)))
	tt.panel.Press(hal.KeyOK)
}

// tries checks the PIN tries the chip has left.
func (tt *pcscTotem) tries(want int) {
	tt.t.Helper()
	if got := tt.card.Tries(); got != want {
		tt.t.Fatalf("the card has %d PIN tries left, want %d", got, want)
	}
}

// remove pulls the card and waits for the idle screen.
func (tt *pcscTotem) remove(ctx context.Context) {
	tt.t.Helper()
	tt.card.Remove()
	tt.wait(ctx, "Inserire la tessera")
}

// scan stops the totem, then fails the test if a PIN typed appears in any
// log line or in any file under the totem's directory (outbox, print jobs,
// receipts), as digits or as the hex of the digits (an APDU dump). The
// logs must not hold the citizen's identity either.
func (tt *pcscTotem) scan(pins ...string) {
	t := tt.t
	t.Helper()
	tt.halt()
	var needles []string
	for _, pin := range pins {
		needles = append(needles, pin, hex.EncodeToString([]byte(pin))) // digits: no case in the hex
	}

	logs := []byte(tt.logs.String())
	if !bytes.Contains(logs, []byte("pin refused")) {
		t.Fatalf("the logs lack the PIN refusals, so the scan would prove little:\n%s", logs)
	}
	for _, secret := range append(needles, "RSSMRA80A01H501U", "ROSSI", "MARIO") {
		for _, line := range strings.Split(string(logs), "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("%q in a log line: %s", secret, line)
			}
		}
	}
	files := 0
	err := filepath.WalkDir(tt.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if i := bytes.Index(b, []byte(n)); i >= 0 {
				t.Errorf("the PIN (%q) is in %s at byte %d", n, path, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("the totem wrote no file: the scan would be vacuous")
	}
	t.Logf("scanned %d log bytes and %d files", len(logs), files)
}

// TestPCSCPINNeverLeavesTheChip: two wrong PINs (the second announces the
// last try), then the right one, consents, provisional receipt. The PIN is
// then nowhere in the logs or in any file the totem wrote.
func TestPCSCPINNeverLeavesTheChip(t *testing.T) {
	tt := startPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tt.insert(ctx)
	tt.enterPIN(ctx, pcscWrong)
	tt.wait(ctx, "Restano 2 tentativi")
	tt.tries(2)
	tt.panel.Press(hal.KeyOK) // retry
	tt.wait(ctx, "PIN: ")
	tt.enterPIN(ctx, pcscWrong)
	// The last try is announced before it is used.
	if screen := tt.screenFor(ctx, "PIN errato"); !strings.Contains(strings.ToLower(screen), "ultimo") {
		t.Fatalf("the last try is not announced:\n%s", screen)
	}
	tt.tries(1)
	tt.panel.Press(hal.KeyOK)
	tt.wait(ctx, "PIN: ")
	tt.enterPIN(ctx, pcscPIN)
	tt.run(ctx, []step{{"Informativa FSE", "#"}, {"Consenso 1 di 2", ""}})
	tt.tries(3)
	tt.run(ctx, consentAnswers[1:])
	tt.wait(ctx, "Salvata: l'esito") // no hub: provisional receipt
	if n := len(tt.printer.Files()); n != 1 {
		t.Fatalf("%d receipt files", n)
	}
	// The citizen ends the session (D) with the card still in: it is
	// left unpowered, so no verified PIN state survives.
	tt.panel.Press(hal.KeyCancel)
	tt.wait(ctx, "Ritirare la tessera")
	haltest.Until(t, ctx, "the card left without the PIN verified", func() bool { return !tt.card.Verified() })
	tt.remove(ctx)
	tt.scan(pcscPIN, pcscWrong)
}

// TestPCSCPINBlocked: three wrong PINs block the card and say so; nothing
// is queued or printed, and the PINs typed are nowhere.
func TestPCSCPINBlocked(t *testing.T) {
	tt := startPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tt.insert(ctx)
	for i := 2; i >= 0; i-- {
		tt.enterPIN(ctx, pcscWrong2)
		if i == 0 {
			break
		}
		tt.wait(ctx, "PIN errato")
		tt.tries(i)
		tt.panel.Press(hal.KeyOK)
		tt.wait(ctx, "PIN: ")
	}
	tt.wait(ctx, "PIN bloccato")
	tt.tries(0)
	tt.remove(ctx)
	if n := len(tt.printer.Files()); n != 0 {
		t.Fatalf("%d receipts printed for a blocked PIN", n)
	}
	tt.scan(pcscWrong2)
}

// pcscd killed while the totem runs: the totem says the service is
// suspended, then recovers on its own and serves the next citizen.
func TestPCSCPcscdRestart(t *testing.T) {
	tt := startPCSC(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("totem log:\n%s", tt.logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// First the reader works: a card in and out.
	tt.insert(ctx)
	tt.remove(ctx)
	tt.pcscd.Kill()
	tt.wait(ctx, "Servizio sospeso")
	if err := tt.pcscd.Restart(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tt.wait(ctx, "Inserire la tessera")
	t.Logf("back %v after pcscd restarted", time.Since(start).Round(time.Millisecond))
	tt.insert(ctx) // up to the PIN prompt: the card is read again
}
