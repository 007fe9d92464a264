// Package lcd drives an HD44780 character LCD (20x4 by default) behind a
// PCF8574 I2C backpack and implements hal.Display.
//
// The backpack maps its port to the LCD as P0 RS, P1 RW, P2 EN,
// P3 backlight, P4–P7 D4–D7, so the LCD runs in 4-bit mode: every nibble is
// two bytes, with and without EN, sent in one I2C transaction. A shadow of
// the screen keeps the I2C traffic to the cells that change (a full 80-cell
// refresh takes ~30 ms at 100 kHz).
//
// Italian letters need custom glyphs on the common ROM A00: New loads
// à è é ì ò ù € È into CGRAM and maps runes to them (see ROM). Runes a ROM
// cannot show become a plain letter (À → A) or '?'.
package lcd

import (
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"periph.io/x/conn/v3/i2c"

	"github.com/aslcns/totem/hal"
)

// Interface guards.
var (
	_ hal.Display = (*LCD)(nil)
	_ Backlight   = (*LCD)(nil)
)

// Backlight is the optional capability of a display whose backlight can be
// switched, asserted at run time like http.Flusher.
type Backlight interface {
	SetBacklight(on bool) error
}

// Backpack port bits.
const (
	bitRS        = 1 << 0
	bitRW        = 1 << 1 // always 0: the driver only writes
	bitEN        = 1 << 2
	bitBacklight = 1 << 3
)

// HD44780 commands.
const (
	cmdClear      = 0x01
	cmdEntryMode  = 0x06 // increment, no shift
	cmdDisplayOn  = 0x0C // display on, cursor off, blink off
	cmdDisplayOff = 0x08
	cmdFunction   = 0x28 // 4-bit, 2 lines (4 on a 20x4), 5x8 dots
	cmdSetCGRAM   = 0x40
	cmdSetDDRAM   = 0x80
)

// Datasheet waits (HD44780U figure 24, 4-bit interface), rounded up.
const (
	waitPowerOn = 50 * time.Millisecond   // > 40 ms after Vcc rises to 2.7 V
	waitInit1   = 4100 * time.Microsecond // after the first 0x3
	waitInit2   = 100 * time.Microsecond  // after the second 0x3
	waitClear   = 1520 * time.Microsecond // clear display and return home
)

// DefaultAddr is the PCF8574 backpack's address; PCF8574A ones use 0x3F.
const DefaultAddr = 0x27

// Options configure an LCD.
type Options struct {
	Addr       uint16    // default DefaultAddr
	Cols, Rows int       // default 20 and 4
	ROM        ROM       // default A00
	Clock      hal.Clock // the datasheet waits; default hal.SystemClock
}

// LCD is an HD44780 behind a PCF8574 backpack. Its methods are safe for
// concurrent use.
type LCD struct {
	dev        *i2c.Dev
	clock      hal.Clock
	cols, rows int
	cs         *charset

	mu        sync.Mutex
	backlight byte   // bitBacklight or 0
	shadow    []byte // what the LCD shows, rows*cols codes
	stale     bool   // a write failed: the shadow cannot be trusted
}

// New initialises the LCD on bus with the datasheet sequence, loads the
// custom glyphs of opts.ROM, clears the screen and turns the backlight on.
// The caller keeps bus and closes it.
func New(bus i2c.Bus, opts Options) (*LCD, error) {
	if opts.Addr == 0 {
		opts.Addr = DefaultAddr
	}
	if opts.Cols <= 0 {
		opts.Cols = 20
	}
	if opts.Rows <= 0 {
		opts.Rows = 4
	}
	if opts.Rows > 4 || opts.Cols > 40 {
		return nil, fmt.Errorf("lcd: unsupported %dx%d size", opts.Cols, opts.Rows)
	}
	if opts.Clock == nil {
		opts.Clock = hal.SystemClock{}
	}
	cs := charsets[opts.ROM]
	if cs == nil {
		return nil, fmt.Errorf("lcd: unknown ROM %d", opts.ROM)
	}
	d := &LCD{
		dev:       &i2c.Dev{Bus: bus, Addr: opts.Addr},
		clock:     opts.Clock,
		cols:      opts.Cols,
		rows:      opts.Rows,
		cs:        cs,
		backlight: bitBacklight,
		shadow:    make([]byte, opts.Cols*opts.Rows),
	}
	if err := d.init(); err != nil {
		return nil, fmt.Errorf("lcd: init at %#x: %w", opts.Addr, err)
	}
	return d, nil
}

func (d *LCD) wait(t time.Duration) { <-d.clock.After(t) }

func (d *LCD) init() error {
	d.wait(waitPowerOn)
	// Expander to a known state: EN low, backlight on.
	if err := d.dev.Tx([]byte{d.backlight}, nil); err != nil {
		return err
	}
	// Reset by instruction into 8-bit mode, then 4-bit.
	for _, w := range []time.Duration{waitInit1, waitInit2, waitInit2} {
		if err := d.dev.Tx(d.nibble(nil, 0x3, 0), nil); err != nil {
			return err
		}
		d.wait(w)
	}
	if err := d.dev.Tx(d.nibble(nil, 0x2, 0), nil); err != nil {
		return err
	}
	d.wait(waitInit2)
	for _, c := range []byte{cmdFunction, cmdDisplayOff, cmdClear, cmdEntryMode} {
		if err := d.command(c); err != nil {
			return err
		}
	}
	if err := d.loadGlyphs(); err != nil {
		return err
	}
	if err := d.command(cmdDisplayOn); err != nil {
		return err
	}
	for i := range d.shadow {
		d.shadow[i] = ' '
	}
	return nil
}

// nibble appends the two bytes that clock n (low 4 bits) into the LCD.
func (d *LCD) nibble(buf []byte, n byte, rs byte) []byte {
	b := n<<4 | d.backlight | rs
	return append(buf, b|bitEN, b)
}

// byte appends the four bytes that send v, high nibble first.
func (d *LCD) byte(buf []byte, v byte, rs byte) []byte {
	return d.nibble(d.nibble(buf, v>>4, rs), v&0x0F, rs)
}

func (d *LCD) command(c byte) error {
	if err := d.dev.Tx(d.byte(nil, c, 0), nil); err != nil {
		return err
	}
	if c == cmdClear || c == 0x02 {
		d.wait(waitClear)
	}
	return nil
}

func (d *LCD) data(codes []byte) error {
	buf := make([]byte, 0, 4*len(codes))
	for _, c := range codes {
		buf = d.byte(buf, c, bitRS)
	}
	return d.dev.Tx(buf, nil)
}

func (d *LCD) loadGlyphs() error {
	if len(d.cs.glyphs) == 0 {
		return nil
	}
	if err := d.command(cmdSetCGRAM); err != nil {
		return err
	}
	var rows []byte
	for _, g := range d.cs.glyphs {
		rows = append(rows, g.rows[:]...)
	}
	return d.data(rows)
}

// rowAddr is the DDRAM address of the first cell of row r: 0x00 0x40 0x14
// 0x54 on a 20x4.
func (d *LCD) rowAddr(r int) byte {
	return byte([]int{0x00, 0x40, d.cols, 0x40 + d.cols}[r])
}

// Size returns the columns and rows.
func (d *LCD) Size() (cols, rows int) { return d.cols, d.rows }

// Show replaces the screen with lines, writing only the cells that change.
func (d *LCD) Show(lines []string) error {
	next := make([]byte, len(d.shadow))
	for i := range next {
		next[i] = ' '
	}
	for r, l := range lines[:min(len(lines), d.rows)] {
		c := 0
		for _, ch := range l {
			if c == d.cols {
				break
			}
			next[r*d.cols+c], _ = d.cs.encode(ch)
			c++
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for r := range d.rows {
		row := next[r*d.cols : (r+1)*d.cols]
		old := d.shadow[r*d.cols : (r+1)*d.cols]
		for c := 0; c < d.cols; {
			if !d.stale && row[c] == old[c] {
				c++
				continue
			}
			// The run goes on over changed cells, and over a single
			// unchanged one between changed cells: rewriting it costs the
			// same four bytes as a new address and saves a transaction.
			changed := func(i int) bool { return i < d.cols && (d.stale || row[i] != old[i]) }
			end := c + 1
			for changed(end) || changed(end+1) {
				end++
			}
			if err := d.command(cmdSetDDRAM | (d.rowAddr(r) + byte(c))); err != nil {
				d.stale = true
				return fmt.Errorf("lcd: write: %w", err)
			}
			if err := d.data(row[c:end]); err != nil {
				d.stale = true
				return fmt.Errorf("lcd: write: %w", err)
			}
			c = end
		}
	}
	copy(d.shadow, next)
	d.stale = false
	return nil
}

// Screen returns what the LCD shows, one string per row padded to the
// columns, read from the shadow buffer with glyph codes turned back into
// the runes they draw.
func (d *LCD) Screen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, d.rows)
	for r := range d.rows {
		buf := make([]byte, 0, d.cols*2)
		for _, b := range d.shadow[r*d.cols : (r+1)*d.cols] {
			buf = utf8.AppendRune(buf, d.cs.decode(b))
		}
		out[r] = string(buf)
	}
	return out
}

// Codes returns a copy of the shadow buffer: the character codes sent to
// the LCD, row after row.
func (d *LCD) Codes() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.shadow)
}

// SetBacklight switches the backlight.
func (d *LCD) SetBacklight(on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.backlight = 0
	if on {
		d.backlight = bitBacklight
	}
	if err := d.dev.Tx([]byte{d.backlight}, nil); err != nil {
		return fmt.Errorf("lcd: backlight: %w", err)
	}
	return nil
}
