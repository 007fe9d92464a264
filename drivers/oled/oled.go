// Package oled shows 16x4 text on an SSD1306 128x64 OLED on I2C and
// implements hal.Display.
//
// It draws with golang.org/x/image/font/inconsolata.Regular8x16, which
// covers Latin-1 and €, into an image1bit.VerticalLSB and hands the frame
// to periph's ssd1306 driver, which sends only the band that changed.
package oled

import (
	"fmt"
	"image"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/inconsolata"
	"golang.org/x/image/math/fixed"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/ssd1306"
	"periph.io/x/devices/v3/ssd1306/image1bit"

	"github.com/aslcns/totem/hal"
)

var _ hal.Display = (*OLED)(nil)

// Text grid of a 128x64 panel with an 8x16 font.
const (
	Cols = 16
	Rows = 4
)

// DefaultAddr is the usual SSD1306 address; some modules use 0x3D.
const DefaultAddr = 0x3C

// Options configure an OLED.
type Options struct {
	Addr uint16 // default DefaultAddr
}

// OLED is an SSD1306 showing text. Its methods are safe for concurrent use.
type OLED struct {
	mu   sync.Mutex
	dev  *ssd1306.Dev
	img  *image1bit.VerticalLSB
	text [Rows][Cols]rune
	face font.Face
}

// New initialises the SSD1306 on bus and clears it. The caller keeps bus
// and closes it.
func New(bus i2c.Bus, opts Options) (*OLED, error) {
	if opts.Addr == 0 {
		opts.Addr = DefaultAddr
	}
	if opts.Addr != DefaultAddr {
		// ssd1306.NewI2C always talks to 0x3C.
		bus = &readdress{Bus: bus, addr: opts.Addr}
	}
	o := ssd1306.DefaultOpts
	dev, err := ssd1306.NewI2C(bus, &o)
	if err != nil {
		return nil, fmt.Errorf("oled: init at %#x: %w", opts.Addr, err)
	}
	d := &OLED{dev: dev, img: image1bit.NewVerticalLSB(dev.Bounds()), face: inconsolata.Regular8x16}
	if err := d.Show(nil); err != nil {
		return nil, err
	}
	return d, nil
}

// readdress sends every transaction to addr.
type readdress struct {
	i2c.Bus
	addr uint16
}

func (b *readdress) Tx(_ uint16, w, r []byte) error { return b.Bus.Tx(b.addr, w, r) }

// Size returns 16 columns and 4 rows.
func (d *OLED) Size() (cols, rows int) { return Cols, Rows }

// Show replaces the screen with lines.
func (d *OLED) Show(lines []string) error {
	var text [Rows][Cols]rune
	for r := range text {
		for c := range text[r] {
			text[r][c] = ' '
		}
	}
	for r, l := range lines[:min(len(lines), Rows)] {
		c := 0
		for _, ch := range l {
			if c == Cols {
				break
			}
			text[r][c] = ch
			c++
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.img.Pix)
	m := d.face.Metrics()
	dr := font.Drawer{Dst: d.img, Src: image.NewUniform(image1bit.On), Face: d.face}
	for r := range text {
		for c, ch := range text[r] {
			if ch == ' ' {
				continue
			}
			if _, ok := d.face.GlyphAdvance(ch); !ok {
				ch = '?'
			}
			dr.Dot = fixed.Point26_6{X: fixed.I(c * 8), Y: fixed.I(r*16) + m.Ascent}
			dr.DrawString(string(ch))
		}
	}
	if err := d.dev.Draw(d.img.Bounds(), d.img, image.Point{}); err != nil {
		return fmt.Errorf("oled: draw: %w", err)
	}
	d.text = text
	return nil
}

// Screen returns the text shown, one string per row padded to 16 runes.
func (d *OLED) Screen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, Rows)
	for r := range d.text {
		out[r] = string(d.text[r][:])
	}
	return out
}

// Frame returns a copy of the last frame drawn.
func (d *OLED) Frame() *image1bit.VerticalLSB {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := image1bit.NewVerticalLSB(d.img.Bounds())
	copy(img.Pix, d.img.Pix)
	return img
}

// Halt turns the panel off; the next Show turns it on again.
func (d *OLED) Halt() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dev.Halt()
}
