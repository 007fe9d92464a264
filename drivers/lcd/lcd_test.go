package lcd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
)

// waits is a hal.Clock that returns at once and records every wait.
type waits struct{ d []time.Duration }

func (w *waits) Now() time.Time { return time.Time{} }
func (w *waits) After(d time.Duration) <-chan time.Time {
	w.d = append(w.d, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

const addr = 0x27

// Script helpers, written from the backpack wiring: P0 RS, P2 EN, P3
// backlight, P4–P7 D4–D7.
const bl = 0x08

func nib(n byte, rs byte) []byte {
	return []byte{n<<4 | bl | rs | 0x04, n<<4 | bl | rs}
}

func cmd(c byte) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: append(nib(c>>4, 0), nib(c&0xF, 0)...)}
}

func data(s ...byte) i2ctest.IO {
	var w []byte
	for _, c := range s {
		w = append(w, nib(c>>4, 1)...)
		w = append(w, nib(c&0xF, 1)...)
	}
	return i2ctest.IO{Addr: addr, W: w}
}

// initOps is the datasheet 4-bit initialisation followed by the CGRAM
// upload of glyphs and display on.
func initOps(gl []glyph) []i2ctest.IO {
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{bl}},
		{Addr: addr, W: []byte{0x3C, 0x38}}, // 0x3, EN high then low
		{Addr: addr, W: []byte{0x3C, 0x38}},
		{Addr: addr, W: []byte{0x3C, 0x38}},
		{Addr: addr, W: []byte{0x2C, 0x28}},             // 0x2: 4-bit
		{Addr: addr, W: []byte{0x2C, 0x28, 0x8C, 0x88}}, // 0x28 function set
		cmd(0x08), // display off
		cmd(0x01), // clear
		cmd(0x06), // entry mode
	}
	if len(gl) > 0 {
		ops = append(ops, cmd(0x40))
		var rows []byte
		for _, g := range gl {
			rows = append(rows, g.rows[:]...)
		}
		ops = append(ops, data(rows...))
	}
	return append(ops, cmd(0x0C))
}

var initWaits = []time.Duration{
	50 * time.Millisecond, 4100 * time.Microsecond, 100 * time.Microsecond,
	100 * time.Microsecond, 100 * time.Microsecond, 1520 * time.Microsecond,
}

func newLCD(t *testing.T, ops []i2ctest.IO, rom ROM) (*LCD, *i2ctest.Playback, *waits) {
	t.Helper()
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	w := &waits{}
	d, err := New(bus, Options{ROM: rom, Clock: w})
	if err != nil {
		t.Fatal(err)
	}
	return d, bus, w
}

func TestInitSequence(t *testing.T) {
	d, bus, w := newLCD(t, initOps(glyphs), A00)
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.d, initWaits) {
		t.Errorf("waits = %v; want %v", w.d, initWaits)
	}
	if c, r := d.Size(); c != 20 || r != 4 {
		t.Errorf("Size = %d, %d", c, r)
	}
	if got := d.Screen(); got[0] != strings.Repeat(" ", 20) {
		t.Errorf("screen after init %q", got)
	}
}

func TestInitA02LoadsOnlyEuro(t *testing.T) {
	_, bus, _ := newLCD(t, initOps(euroGlyph), A02)
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestScreenUpdate(t *testing.T) {
	ops := initOps(glyphs)
	// Rows start at 0x00 0x40 0x14 0x54; blanks are not written.
	ops = append(ops,
		cmd(0x80), data([]byte("Benvenuto")...),
		cmd(0x80|(0x40+2)), data('C', 'i', 't', 't', 0, ':'), // "Città:" à is glyph 0
		cmd(0x80|0x14), data(7, ' ', 'p', 'r', 'o', 'n', 't', 'o'), // È is glyph 7
		cmd(0x80|(0x54+13)), data('1', '2', ',', '5', '0', ' ', 6), // € is glyph 6
	)
	d, bus, _ := newLCD(t, ops, A00)
	err := d.Show([]string{"Benvenuto", "  Città:", "È pronto", "             12,50 €"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOneCellChange(t *testing.T) {
	ops := initOps(glyphs)
	ops = append(ops,
		cmd(0x80|0x40), data([]byte("PIN: 12")...),
		cmd(0x80|(0x40+7)), data('3'), // only the new cell
		cmd(0x80|(0x40+2)), data('X'), // a changed cell mid-line
		cmd(0x80|(0x40+7)), data(' '), // a cleared cell
	)
	d, bus, _ := newLCD(t, ops, A00)
	for _, l := range []string{"PIN: 12", "PIN: 123", "PIX: 123", "PIX: 12"} {
		if err := d.Show([]string{"", l}); err != nil {
			t.Fatal(err)
		}
	}
	// Showing the same again writes nothing.
	if err := d.Show([]string{"", "PIX: 12"}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBacklight(t *testing.T) {
	// With the backlight off, bit 3 is clear in every byte.
	ops := append(initOps(glyphs),
		i2ctest.IO{Addr: addr, W: []byte{0x00}},
		i2ctest.IO{Addr: addr, W: []byte{0x84, 0x80, 0x04, 0x00}}, // 0x80: row 0
		i2ctest.IO{Addr: addr, W: []byte{0x45, 0x41, 0x15, 0x11}}, // 'A' = 0x41, RS
	)
	d, bus, _ := newLCD(t, ops, A00)
	var disp hal.Display = d
	b, ok := disp.(Backlight)
	if !ok {
		t.Fatal("LCD is not a Backlight")
	}
	if err := b.SetBacklight(false); err != nil {
		t.Fatal(err)
	}
	if err := d.Show([]string{"A"}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteErrorRewritesAll(t *testing.T) {
	ops := append(initOps(glyphs), cmd(0x80))
	d, bus, _ := newLCD(t, ops, A00)
	if err := d.Show([]string{"Ciao"}); err == nil { // the data Tx is unexpected
		t.Fatal("Show: no error")
	}
	// After a failure the next Show rewrites every row.
	bus.Ops = append(bus.Ops,
		cmd(0x80), data([]byte("Ciao                ")...),
		cmd(0x80|0x40), data([]byte(strings.Repeat(" ", 20))...),
		cmd(0x80|0x14), data([]byte(strings.Repeat(" ", 20))...),
		cmd(0x80|0x54), data([]byte(strings.Repeat(" ", 20))...),
	)
	bus.Count = len(ops)
	if err := d.Show([]string{"Ciao"}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestItalianLettersHaveGlyphs(t *testing.T) {
	for _, rom := range []ROM{A00, A02} {
		cs := charsets[rom]
		for _, r := range "àèéìòùÈ€" {
			b, ok := cs.encode(r)
			if !ok {
				t.Errorf("%v: %q has no code", rom, r)
				continue
			}
			if got := cs.decode(b); got != r {
				t.Errorf("%v: %q → %#x → %q", rom, r, b, got)
			}
			if rom == A00 && b >= 8 {
				t.Errorf("A00: %q → %#x; want a CGRAM code", r, b)
			}
		}
		if m := rom.Missing("Perché è già l'una? Totale 12,50 €. Città: Forlì, Può"); len(m) != 0 {
			t.Errorf("%v: missing %q", rom, m)
		}
	}
	if len(glyphs) > 8 {
		t.Errorf("%d glyphs; CGRAM holds 8", len(glyphs))
	}
	if m := A00.Missing("ÀÉ☃"); !slices.Equal(m, []rune("ÀÉ☃")) {
		t.Errorf("A00.Missing = %q", m)
	}
	// Stand-ins for the rest.
	cs := charsets[A00]
	for r, want := range map[rune]byte{'À': 'A', 'Ò': 'O', '☃': '?'} {
		if b, _ := cs.encode(r); b != want {
			t.Errorf("A00: %q → %q; want %q", r, b, want)
		}
	}
}

func TestConformance(t *testing.T) {
	for _, rom := range []ROM{A00, A02} {
		t.Run(rom.String(), func(t *testing.T) {
			w := &waits{}
			d, err := New(&i2ctest.Record{}, Options{ROM: rom, Clock: w})
			if err != nil {
				t.Fatal(err)
			}
			haltest.DisplayConformance(t, d, d.Screen)
		})
	}
}
