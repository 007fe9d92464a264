// Package board is the one place that looks up the totem's pins and buses
// by name through periph's registries and opens the panel drivers on them.
//
// On a machine without GPIO (CI, a laptop) host.Init succeeds and loads
// nothing, gpioreg.ByName returns nil and i2creg.Open fails: board turns
// each of these into a configuration error that names the missing pin or
// bus and matches ErrNotFound.
package board

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	host "periph.io/x/host/v3"

	"github.com/aslcns/totem/drivers/keypad"
	"github.com/aslcns/totem/drivers/lcd"
	"github.com/aslcns/totem/drivers/oled"
	"github.com/aslcns/totem/hal"
)

// ErrNotFound is matched by the error for a pin or bus this machine lacks.
var ErrNotFound = errors.New("board: not found")

// DisplayKind says which display is fitted.
type DisplayKind string

// Displays.
const (
	LCD  DisplayKind = "lcd"  // HD44780 20x4 on a PCF8574 backpack
	OLED DisplayKind = "oled" // SSD1306 128x64
)

// Wiring describes how the panel is connected, independently of the
// configuration format: the caller fills it from its config.
type Wiring struct {
	RowPins []string // keypad rows, top first, e.g. "GPIO5"
	ColPins []string // keypad columns, left first
	// Keypad tunes the scan; its Map defaults to 4x4, or 4x3 with three
	// ColPins.
	Keypad keypad.Options

	I2CBus  string      // e.g. "1" or "/dev/i2c-1"; "" for the first bus
	Display DisplayKind // default LCD
	Addr    uint16      // I2C address; 0 for the driver's default
	ROM     lcd.ROM     // LCD character ROM, default A00
}

// Init initialises periph's host drivers once.
var Init = sync.OnceValue(func() error {
	if _, err := host.Init(); err != nil {
		return fmt.Errorf("board: host init: %w", err)
	}
	return nil
})

// ConfigError is a pin or bus of the wiring this machine does not have.
type ConfigError struct {
	What string // "keypad row 2 pin", "I2C bus"
	Name string // the name looked up
	Err  error  // the registry's error, nil when it found nothing
}

func (e *ConfigError) Error() string {
	s := fmt.Sprintf("board: %s %q not found", e.What, e.Name)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	} else {
		s += " (no such pin on this machine: check the wiring configuration)"
	}
	return s
}

// Is makes a ConfigError match ErrNotFound.
func (e *ConfigError) Is(target error) bool { return target == ErrNotFound }

func (e *ConfigError) Unwrap() error { return e.Err }

// pin looks up a GPIO by name.
func pin(what, name string) (gpio.PinIO, error) {
	if name == "" {
		return nil, fmt.Errorf("board: %s: no pin name configured", what)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, &ConfigError{What: what, Name: name}
	}
	return p, nil
}

// keypadPins looks up the keypad's row or column pins names, refusing one
// already in seen (which it fills).
func keypadPins(names []string, what string, seen map[string]bool) ([]gpio.PinIO, error) {
	var pins []gpio.PinIO
	for i, n := range names {
		p, err := pin(fmt.Sprintf("keypad %s %d pin", what, i+1), n)
		if err != nil {
			return nil, err
		}
		pins = append(pins, p)
		if seen[n] {
			return nil, fmt.Errorf("board: keypad pin %q used twice", n)
		}
		seen[n] = true
	}
	return pins, nil
}

// OpenKeypad looks up the keypad pins and returns the keypad on them. The
// caller runs its Run method.
func OpenKeypad(w Wiring) (*keypad.Keypad, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	if len(w.RowPins) == 0 || len(w.ColPins) == 0 {
		return nil, errors.New("board: keypad: row and column pins must be configured")
	}
	seen := map[string]bool{}
	rows, err := keypadPins(w.RowPins, "row", seen)
	if err != nil {
		return nil, err
	}
	colIOs, err := keypadPins(w.ColPins, "column", seen)
	if err != nil {
		return nil, err
	}
	cols := make([]gpio.PinIn, 0, len(colIOs))
	for _, p := range colIOs {
		cols = append(cols, p)
	}
	opts := w.Keypad
	if opts.Map == nil && len(cols) == 3 {
		opts.Map = keypad.Map4x3
	}
	k, err := keypad.New(rows, cols, opts)
	if err != nil {
		return nil, fmt.Errorf("board: %w", err)
	}
	return k, nil
}

// OpenDisplay opens the I2C bus and the display on it. The io.Closer closes
// the bus; close it after the last Show.
func OpenDisplay(w Wiring) (hal.Display, io.Closer, error) {
	if err := Init(); err != nil {
		return nil, nil, err
	}
	kind := w.Display
	if kind == "" {
		kind = LCD
	}
	if kind != LCD && kind != OLED {
		return nil, nil, fmt.Errorf("board: unknown display %q (want %q or %q)", kind, LCD, OLED)
	}
	bus, err := i2creg.Open(w.I2CBus)
	if err != nil {
		name := w.I2CBus
		if name == "" {
			name = "(first)"
		}
		return nil, nil, &ConfigError{What: "I2C bus", Name: name, Err: err}
	}
	d, err := openOn(bus, kind, w, nil)
	if err != nil {
		bus.Close()
		return nil, nil, fmt.Errorf("board: %s on I2C bus %s: %w", kind, bus, err)
	}
	return d, bus, nil
}

// openOn opens the display of the given kind on an open bus.
func openOn(bus i2c.Bus, kind DisplayKind, w Wiring, clock hal.Clock) (hal.Display, error) {
	if kind == OLED {
		return oled.New(bus, oled.Options{Addr: w.Addr})
	}
	return lcd.New(bus, lcd.Options{Addr: w.Addr, ROM: w.ROM, Clock: clock})
}
