package main

import (
	"fmt"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/drivers/board"
	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/escpos/vprinter"
	"github.com/aslcns/totem/drivers/keypad"
	"github.com/aslcns/totem/drivers/lcd"
	"github.com/aslcns/totem/hal"
)

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
