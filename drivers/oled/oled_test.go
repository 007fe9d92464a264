package oled

import (
	"bytes"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/aslcns/totem/hal/haltest"
)

// initCmd is the SSD1306 initialisation ssd1306.NewI2C sends for a 128x64
// panel with DefaultOpts, behind the 0x00 "commands follow" control byte.
var initCmd = []byte{
	0x00,
	0xAE,       // display off
	0xD3, 0x00, // display offset 0
	0x40,       // start line 0
	0xA1,       // segment remap
	0xC8,       // COM scan reversed
	0xDA, 0x12, // COM pins: alternative
	0x81, 0xFF, // contrast
	0xA4,       // display from GDDRAM
	0xA6,       // normal, not inverted
	0xD5, 0xF0, // oscillator
	0x8D, 0x14, // charge pump on
	0xD9, 0xF1, // pre-charge
	0xDB, 0x40, // Vcomh
	0x2E,     // scroll off
	0xA8, 63, // multiplex 64
	0x20, 0x00, // horizontal addressing
	0x21, 0, 127, // columns
	0x22, 0, 7, // pages
	0xAF, // display on
}

// page is the two transactions that write one full 128-byte page.
func page(addr uint16, p byte, data []byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0x00, 0xB0 | p, 0x00, 0x10}},
		{Addr: addr, W: append([]byte{0x40}, data...)},
	}
}

func TestInitAndBlankFrame(t *testing.T) {
	for _, addr := range []uint16{0x3C, 0x3D} {
		ops := []i2ctest.IO{{Addr: addr, W: initCmd}}
		for p := range byte(8) {
			ops = append(ops, page(addr, p, make([]byte, 128))...)
		}
		bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
		d, err := New(bus, Options{Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Close(); err != nil {
			t.Fatal(err)
		}
		if c, r := d.Size(); c != 16 || r != 4 {
			t.Fatalf("Size = %d, %d", c, r)
		}
	}
}

func TestShowSendsFrame(t *testing.T) {
	rec := &i2ctest.Record{}
	d, err := New(rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(rec.Ops)
	if n != 1+16 || !bytes.Equal(rec.Ops[0].W, initCmd) {
		t.Fatalf("init sent %d transactions, first %#v", n, rec.Ops[0].W)
	}
	if err := d.Show([]string{"", "", "", "        €"}); err != nil {
		t.Fatal(err)
	}
	frame := d.Frame()
	// € sits in text row 3, column 8: pixels 64–71 by 48–63.
	lit := 0
	for y := range 64 {
		for x := range 128 {
			if frame.BitAt(x, y) {
				lit++
				if y < 48 || x < 64 || x > 72 {
					t.Fatalf("pixel (%d, %d) lit outside the cell of €", x, y)
				}
			}
		}
	}
	if lit < 10 {
		t.Fatalf("%d pixels lit for €", lit)
	}
	// Only pages 6 and 7 changed: for each, a column address then data
	// taken from the frame.
	sent := rec.Ops[n:]
	if len(sent) != 4 {
		t.Fatalf("Show sent %d transactions; want 4: %v", len(sent), sent)
	}
	for i, p := range []int{6, 7} {
		c, w := sent[2*i].W, sent[2*i+1].W
		if c[0] != 0x00 || c[1] != 0xB0|byte(p) {
			t.Errorf("page %d: command %#v", p, c)
		}
		start := int(c[2]&0x0F | c[3]&0x0F<<4)
		if w[0] != 0x40 || !bytes.Equal(w[1:], frame.Pix[p*128+start:p*128+start+len(w)-1]) {
			t.Errorf("page %d: data %#v does not match the frame", p, w)
		}
	}
	if got := d.Screen()[3]; got != "        €       " {
		t.Errorf("Screen()[3] = %q", got)
	}
}

func TestConformance(t *testing.T) {
	d, err := New(&i2ctest.Record{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	haltest.DisplayConformance(t, d, d.Screen)
}
