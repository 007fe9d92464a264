package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/drivers/board"
	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/drivers/evdev"
	"github.com/aslcns/totem/drivers/keypad"
	"github.com/aslcns/totem/drivers/lcd"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/drivers/speech"
	"github.com/aslcns/totem/drivers/term"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
)

// openDevices opens every device the configuration and the flags name,
// the one place totemd does: the printer, the card reader, the panel
// (terminal, simulated or hardware), the speaker and the keyboard, each
// closed when run returns. The panel decides where the logs go (a
// terminal panel sends them to state_dir/totemd.log), so the logger is
// made as soon as it is known.
func (d *wired) openDevices(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := d.cfg
	d.reader = sim.NewReader("sim-0")
	d.dev = firmware.Devices{Reader: d.reader, Printer: sim.NewPrinter(cfg.Devices.ReceiptDir)}
	if err := d.openPrinter(); err != nil {
		return err
	}
	if cfg.Devices.Reader == "pcsc" {
		r, err := pcsc.Open(ctx, pcsc.Options{Reader: cfg.Devices.PCSC.Reader})
		if err != nil {
			return fmt.Errorf("totemd: reader = pcsc: %w", err)
		}
		d.undo.Push(func() { r.Close() })
		d.dev.Reader = r
	}
	logw, err := d.openPanel(ctx, stdin, stdout, stderr)
	if err != nil {
		return err
	}
	logger, level := sdnotify.Logger(logw, cfg.Log.Level, cfg.Log.Format)
	d.log, d.level = logger.With("totem", cfg.Totem.ID), level
	if cfg.Devices.Panel == "hardware" {
		kp, disp, closeBus, err := hardwarePanel(cfg)
		if err != nil {
			return err
		}
		d.undo.Push(func() { closeBus() })
		d.dev.Keypad, d.dev.Display, d.runKeypad = kp, disp, kp.Run
	}
	if cfg.Devices.Speaker.Kind == "espeak" {
		spk, err := speech.New(speech.Options{Dir: d.fl.vspeech, Rate: cfg.Devices.Speaker.Rate})
		if err != nil {
			// The totem still serves; a technician is told.
			d.log.Error("no speech output", "err", err)
		} else {
			d.undo.Push(func() { spk.Close() })
			d.dev.Speaker = spk
		}
	}
	if cfg.Devices.Keyboard != "" {
		d.kbd = evdev.New(cfg.Devices.Keyboard, evdev.Layouts[cfg.Devices.KeyboardLayout])
		d.dev.Keyboard = d.kbd
	}
	d.dev = testHook(d.dev)
	d.dev, d.upd = gateDevices(cfg, d.dev)
	return nil
}

// openPrinter opens the ESC/POS printer (or the virtual one of
// --vprinter) in place of the simulated one; its status reaches the app.
func (d *wired) openPrinter() error {
	if d.cfg.Devices.Printer != "escpos" && d.fl.vprinter == "" {
		return nil
	}
	p, closePrinter, err := escposPrinter(d.cfg, d.fl.vprinter, func(s hal.PrinterStatus) {
		if a := d.appRef.Load(); a != nil {
			a.PrinterStatus(s.Err())
		}
	})
	if err != nil {
		return err
	}
	d.undo.Push(func() { closePrinter() })
	d.dev.Printer = p
	if p.Profile().ASB {
		d.asb = p
	}
	return nil
}

// openPanel draws the panel in the terminal on stdin (panel "terminal",
// or "auto" with a terminal there), logging to state_dir/totemd.log, or
// simulates one (unless the panel is the hardware's). It returns where
// the logs go.
func (d *wired) openPanel(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (io.Writer, error) {
	cfg := d.cfg
	tty, _ := stdin.(*os.File)
	d.useTerm = cfg.Devices.Panel == "terminal" || cfg.Devices.Panel == "auto" && tty != nil && isTerminal(tty)
	if !d.useTerm {
		if cfg.Devices.Panel != "hardware" {
			p := sim.NewPanel(20, 4)
			d.dev.Keypad, d.dev.Display = p, p
		}
		return stderr, nil
	}
	if tty == nil {
		return nil, errors.New("totemd: panel = terminal needs a terminal on stdin")
	}
	restore, err := term.Raw(tty)
	if err != nil {
		return nil, fmt.Errorf("totemd: panel = terminal: %w", err)
	}
	d.undo.Push(func() { restore() })
	logPath := filepath.Join(cfg.StateDir, "totemd.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("totemd: %w", err)
	}
	d.undo.Push(func() { f.Close() })
	d.tp = term.New(tty, stdout, term.Options{
		Title:  "Totem " + cfg.Totem.ID + " · " + cfg.Totem.ASL,
		OnCard: func(in bool) { d.onCard(ctx, in) },
		OnQuit: d.cancel,
		Help:   "0-9 A-D * #  Invio=#  Esc=D  i=inserisci r=rimuovi tessera  q=esci",
	})
	d.dev.Keypad, d.dev.Display = d.tp, d.tp
	return f, nil
}

// onCard is the terminal panel's i (in) and r keys: the virtual cards
// of --vcard through pcscd, else the simulated ones of --cards.
func (d *wired) onCard(ctx context.Context, in bool) {
	s := &d.demo
	switch {
	case s.vcs != nil && in:
		if err := s.vcs[s.turn%len(s.vcs)].Insert(ctx); err != nil {
			d.tp.Status("Carta virtuale: " + err.Error())
		}
	case s.vcs != nil:
		s.vcs[s.turn%len(s.vcs)].Remove()
		s.turn++
	case in:
		d.reader.Insert(s.sims[s.turn%len(s.sims)])
	default:
		if d.reader.Present() {
			s.turn++
		}
		d.reader.Remove()
	}
}

// hardwarePanel opens the GPIO keypad and the I2C display the config
// describes. The keypad's scan loop is for the caller to run; closer
// releases the I2C bus.
func hardwarePanel(cfg *config.Totemd) (*keypad.Keypad, hal.Display, func() error, error) {
	d := cfg.Devices
	w := board.Wiring{
		RowPins: d.Keypad.Rows,
		ColPins: d.Keypad.Cols,
		I2CBus:  d.Display.Bus,
		Display: board.DisplayKind(d.Display.Kind),
		Addr:    uint16(d.Display.Addr),
		ROM:     lcd.A00,
	}
	if d.Display.ROM == "a02" {
		w.ROM = lcd.A02
	}
	kp, err := board.OpenKeypad(w)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("totemd: panel = hardware: %w", err)
	}
	disp, closer, err := board.OpenDisplay(w)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("totemd: panel = hardware: %w", err)
	}
	return kp, disp, closer.Close, nil
}

// escposPrinter opens the serial ESC/POS printer the config describes, or,
// with vdir set, a virtual printer on a pty writing its receipts (text and
// PNG) to vdir. closer stops the driver, closes the port and, for the
// virtual printer, stops it.
func escposPrinter(cfg *config.Totemd, vdir string, onStatus func(hal.PrinterStatus)) (*escpos.Printer, func() error, error) {
	d := cfg.Devices.ESCPOS
	prof, err := escpos.ProfileByName(d.Profile)
	if err != nil {
		return nil, nil, fmt.Errorf("totemd: devices.escpos.profile: %w", err)
	}
	baud := d.Baud
	if baud == 0 {
		baud = prof.Baud
	}
	port := d.Port
	var vp *vprinter.VPrinter
	if vdir != "" {
		if vp, err = vprinter.StartWith(vdir, vprinter.Options{Cols: prof.Cols}); err != nil {
			return nil, nil, fmt.Errorf("totemd: virtual printer: %w", err)
		}
		port = vp.TTY()
	}
	rw, err := escpos.OpenSerial(port, baud)
	if err != nil {
		if vp != nil {
			vp.Close()
		}
		return nil, nil, fmt.Errorf("totemd: printer = escpos: %w", err)
	}
	p := escpos.New(rw, prof, escpos.Options{OnStatus: onStatus})
	closer := func() error {
		p.Close()
		err := rw.Close()
		if vp != nil {
			vp.Close()
		}
		return err
	}
	return p, closer, nil
}
