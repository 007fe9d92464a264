package main

import (
	"fmt"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/drivers/board"
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
