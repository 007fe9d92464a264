// Package vprinter is a virtual ESC/POS receipt printer: a decoder of the
// byte stream the escpos driver sends (text with styles and alignment, QR
// codes, barcodes, raster images, cuts), renderers of each receipt to text
// and to PNG, and a printer on a pty that answers DLE EOT according to a
// settable condition (ok, paper near end, paper out, cover open, offline,
// silent) and can send XOFF/XON.
package vprinter

import (
	"bytes"
	"image"
	"strings"

	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/hal"
)

// Kind is what a receipt line holds.
type Kind int

// Line kinds.
const (
	TextLine Kind = iota
	QRLine
	BarcodeLine
	ImageLine
)

// Span is a run of text in one style.
type Span struct {
	Text  string
	Bold  bool
	Wide  bool // double width
	Tall  bool // double height
	Under bool
}

// Line is one printed line or symbol.
type Line struct {
	Kind  Kind
	Align hal.Align
	Spans []Span      // TextLine
	Data  string      // QR or barcode data
	Image *image.Gray // ImageLine (black = 0)
}

// Text returns the line's characters (or the symbol's data).
func (l Line) Text() string {
	if l.Kind != TextLine {
		return l.Data
	}
	var b strings.Builder
	for _, s := range l.Spans {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Wide reports whether any span is double width.
func (l Line) Wide() bool {
	for _, s := range l.Spans {
		if s.Wide {
			return true
		}
	}
	return false
}

// Receipt is what the printer printed between two cuts.
type Receipt struct {
	Lines       []Line
	Cut         bool // ended by a cut, not by a flush
	Interrupted bool // the printer was not ready while printing it
}

// Command is a real-time or status command seen in the stream.
type Command struct {
	DLEEOT byte // n of DLE EOT, 0 when not a status request
	ASB    byte // n of GS a (automatic status back), when SetASB
	SetASB bool
}

// Decoder turns an ESC/POS byte stream back into receipts. Feed it with
// Write in pieces of any size; it never fails and ignores what it does
// not know. The zero value is not ready: use NewDecoder.
type Decoder struct {
	// OnCommand, when set, is called for real-time commands as they are
	// decoded (the virtual printer answers DLE EOT from it).
	OnCommand func(Command)
	// OnReceipt, when set, is called for each receipt when it is cut.
	OnReceipt func(*Receipt)

	buf      []byte
	skip     int // bytes of an oversized command still to drop
	cp       escpos.CodePage
	bold     bool
	wide     bool
	tall     bool
	under    bool
	align    hal.Align
	barH     int
	qrData   string
	cur      *Receipt
	line     []Span
	lineAl   hal.Align
	pending  bool // the current line has started
	symbol   bool // the last line is a symbol or image not yet ended by LF
	receipts []*Receipt

	// Unknown counts the commands and bytes the decoder did not understand.
	Unknown int
	// Interrupted, set by the owner, marks the receipt in progress (the
	// printer was not ready while it came in).
	Interrupted bool
}

// NewDecoder returns a decoder in the printer's power-on state (PC437).
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.reset()
	return d
}

func (d *Decoder) reset() {
	d.cp = escpos.PC437
	d.bold, d.wide, d.tall, d.under = false, false, false, false
	d.align = hal.Left
	d.barH = 162
}

// Receipts returns the receipts cut so far.
func (d *Decoder) Receipts() []*Receipt { return d.receipts }

// Write feeds p to the decoder. It always consumes all of p.
func (d *Decoder) Write(p []byte) (int, error) {
	n := len(p)
	if d.skip > 0 {
		k := min(d.skip, len(p))
		d.skip -= k
		p = p[k:]
	}
	d.buf = append(d.buf, p...)
	i := 0
	for i < len(d.buf) {
		used := d.step(d.buf[i:])
		if used == 0 { // incomplete command: wait for more bytes
			break
		}
		i += used
		if d.skip > 0 { // a command longer than the buffer: drop the rest
			k := min(d.skip, len(d.buf)-i)
			d.skip -= k
			i += k
		}
	}
	d.buf = append(d.buf[:0], d.buf[i:]...)
	return n, nil
}

// Flush ends the receipt in progress (without a cut) and returns it, or
// nil when nothing was printed since the last cut.
func (d *Decoder) Flush() *Receipt {
	d.endLine(false)
	r := d.cur
	d.cur = nil
	if r != nil {
		d.receipts = append(d.receipts, r)
		if d.OnReceipt != nil {
			d.OnReceipt(r)
		}
	}
	return r
}

func (d *Decoder) receipt() *Receipt {
	if d.cur == nil {
		d.cur = &Receipt{}
	}
	if d.Interrupted {
		d.cur.Interrupted = true
	}
	return d.cur
}

func (d *Decoder) addLine(l Line) {
	r := d.receipt()
	d.symbol = l.Kind != TextLine
	if n := len(r.Lines); n > 0 && l.Kind == ImageLine {
		// Bands of one image arrive as consecutive GS v 0 commands.
		if prev := &r.Lines[n-1]; prev.Kind == ImageLine && prev.Image.Bounds().Dx() == l.Image.Bounds().Dx() {
			prev.Image = stack(prev.Image, l.Image)
			return
		}
	}
	r.Lines = append(r.Lines, l)
}

func stack(a, b *image.Gray) *image.Gray {
	out := image.NewGray(image.Rect(0, 0, a.Bounds().Dx(), a.Bounds().Dy()+b.Bounds().Dy()))
	copy(out.Pix, a.Pix)
	copy(out.Pix[len(a.Pix):], b.Pix)
	return out
}

func (d *Decoder) char(r rune) {
	d.symbol = false
	if !d.pending {
		d.pending = true
		d.lineAl = d.align
	}
	st := Span{Bold: d.bold, Wide: d.wide, Tall: d.tall, Under: d.under}
	if n := len(d.line); n > 0 {
		last := &d.line[n-1]
		if last.Bold == st.Bold && last.Wide == st.Wide && last.Tall == st.Tall && last.Under == st.Under {
			last.Text += string(r)
			return
		}
	}
	st.Text = string(r)
	d.line = append(d.line, st)
}

// endLine closes the current text line; force adds an empty line when
// nothing is pending (a bare LF).
func (d *Decoder) endLine(force bool) {
	if !d.pending && !force {
		return
	}
	al := d.align
	if d.pending {
		al = d.lineAl
	}
	d.addLine(Line{Kind: TextLine, Align: al, Spans: d.line})
	d.line = nil
	d.pending = false
}

func (d *Decoder) cut() {
	d.endLine(false)
	if d.cur == nil {
		d.cur = &Receipt{}
	}
	d.cur.Cut = true
	d.Flush()
}

const maxImageBytes = 1 << 20

// step decodes one command at the start of b and returns the bytes it
// used, or 0 when b holds only part of it.
func (d *Decoder) step(b []byte) int {
	c := b[0]
	switch c {
	case 0x0a: // LF
		if d.symbol && !d.pending {
			// The LF that ends a symbol's line adds no empty line.
			d.symbol = false
			return 1
		}
		d.endLine(true)
		return 1
	case 0x0d: // CR: ignored, as most printers do when LF follows
		return 1
	case 0x10: // DLE
		return d.dle(b)
	case 0x1b: // ESC
		return d.esc(b)
	case 0x1c: // FS
		if len(b) < 2 {
			return 0
		}
		if b[1] == '.' || b[1] == '&' {
			return 2
		}
		d.Unknown++
		return 2
	case 0x1d: // GS
		return d.gs(b)
	}
	if c < 0x20 || c == 0x7f {
		d.Unknown++
		return 1
	}
	d.char(d.cp.Decode(c))
	return 1
}

// dle decodes a DLE command (real-time status and pulse).
func (d *Decoder) dle(b []byte) int {
	if len(b) < 3 {
		return 0
	}
	switch b[1] {
	case 0x04: // DLE EOT n
		if d.OnCommand != nil {
			d.OnCommand(Command{DLEEOT: b[2]})
		}
		return 3
	case 0x05: // DLE ENQ n
		return 3
	case 0x14: // DLE DC4 fn a b
		if len(b) < 5 {
			return 0
		}
		return 5
	}
	d.Unknown++
	return 1
}

// esc decodes an ESC command.
func (d *Decoder) esc(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '@': // a new job: end a receipt that was not cut
		d.Flush()
		d.reset()
		return 2
	case '2': // default line spacing
		return 2
	case 't', '!', 'E', 'a', '-', 'd', 'J', 'M', 'G', 'R', 'V', '{', '3':
		if len(b) < 3 {
			return 0
		}
		d.escParam(b[1], b[2])
		return 3
	case 'c':
		if len(b) < 4 {
			return 0
		}
		return 4
	}
	d.Unknown++
	return 2
}

// escParam applies ESC cmd n; the commands without a visible effect are
// consumed and ignored.
func (d *Decoder) escParam(cmd, n byte) {
	switch cmd {
	case 't':
		if cp, ok := escpos.CodePageByTable(n); ok {
			d.cp = cp
		}
	case '!':
		d.bold = n&0x08 != 0
		d.tall = n&0x10 != 0
		d.wide = n&0x20 != 0
		d.under = n&0x80 != 0
	case 'E':
		d.bold = n&1 != 0
	case '-':
		d.under = n&3 != 0
	case 'a':
		switch n {
		case 0, '0':
			d.align = hal.Left
		case 1, '1':
			d.align = hal.Center
		case 2, '2':
			d.align = hal.Right
		}
	case 'd':
		d.endLine(false)
		for range min(int(n), 32) {
			d.endLine(true)
		}
	}
}

// gsFixed is how many bytes the GS commands of fixed length take, with
// the effect of those the decoder keeps (nil: consumed and ignored).
var gsFixed = map[byte]struct {
	n  int
	fn func(d *Decoder, b []byte)
}{
	'!': {3, func(d *Decoder, b []byte) { d.wide, d.tall = b[2]&0x70 != 0, b[2]&0x07 != 0 }},
	'h': {3, func(d *Decoder, b []byte) { d.barH = int(b[2]) }},
	'L': {4, nil}, // left margin nL nH
	'w': {3, nil},
	'H': {3, nil},
	'f': {3, nil},
	'r': {3, nil},
	'a': {3, func(d *Decoder, b []byte) {
		if d.OnCommand != nil {
			d.OnCommand(Command{SetASB: true, ASB: b[2]})
		}
	}},
}

// gs decodes a GS command.
func (d *Decoder) gs(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	if f, ok := gsFixed[b[1]]; ok {
		if len(b) < f.n {
			return 0
		}
		if f.fn != nil {
			f.fn(d, b)
		}
		return f.n
	}
	switch b[1] {
	case 'V': // cut
		return d.gsCut(b)
	case 'k': // barcode
		return d.gsBarcode(b)
	case '(':
		return d.gsExtended(b)
	case 'v':
		return d.gsRaster(b)
	}
	d.Unknown++
	return 2
}

// gsCut decodes GS V m [n].
func (d *Decoder) gsCut(b []byte) int {
	if len(b) < 3 {
		return 0
	}
	if b[2] == 65 || b[2] == 66 || b[2] == 97 || b[2] == 98 || b[2] == 103 || b[2] == 104 {
		if len(b) < 4 {
			return 0
		}
		d.cut()
		return 4
	}
	d.cut()
	return 3
}

// gsBarcode decodes GS k m: NUL-terminated data for m ≤ 6, counted after.
func (d *Decoder) gsBarcode(b []byte) int {
	if len(b) < 4 {
		return 0
	}
	m := b[2]
	if m <= 6 { // NUL-terminated data
		end := bytes.IndexByte(b[3:], 0)
		if end < 0 {
			if len(b) > 300 {
				d.Unknown++
				return 3
			}
			return 0
		}
		end += 3
		d.barcode(string(b[3:end]))
		return end + 1
	}
	n := int(b[3])
	if len(b) < 4+n {
		return 0
	}
	data := b[4 : 4+n]
	if m == 73 {
		d.barcode(code128Text(data))
	} else {
		d.barcode(string(data))
	}
	return 4 + n
}

// gsExtended decodes GS ( with its 16-bit length: of them, only the QR
// code's store and print are kept.
func (d *Decoder) gsExtended(b []byte) int {
	if len(b) < 5 {
		return 0
	}
	n := int(b[3]) | int(b[4])<<8
	if len(b) < 5+n {
		return 0 // at most 64 KiB: wait for it
	}
	if b[2] != 'k' || n < 2 {
		return 5 + n
	}
	cn, fn, body := b[5], b[6], b[7:5+n]
	if cn == 0x31 {
		switch fn {
		case 0x50:
			if len(body) >= 1 {
				d.qrData = string(body[1:])
			}
		case 0x51:
			d.endLine(false)
			d.addLine(Line{Kind: QRLine, Align: d.align, Data: d.qrData})
		}
	}
	return 5 + n
}

// gsRaster decodes GS v 0, a raster image.
func (d *Decoder) gsRaster(b []byte) int {
	if len(b) < 8 {
		return 0
	}
	if b[2] != '0' {
		d.Unknown++
		return 3
	}
	w := int(b[4]) | int(b[5])<<8
	h := int(b[6]) | int(b[7])<<8
	size := w * h
	if size > maxImageBytes || w == 0 || h == 0 {
		d.Unknown++
		d.skip = size
		return 8
	}
	if len(b) < 8+size {
		return 0
	}
	d.endLine(false)
	d.addLine(Line{Kind: ImageLine, Align: d.align, Image: raster(b[8:8+size], w, h)})
	return 8 + size
}

func (d *Decoder) barcode(data string) {
	d.endLine(false)
	d.addLine(Line{Kind: BarcodeLine, Align: d.align, Data: data})
}

// code128Text strips the code set selectors ({A {B {C) and unescapes {{.
func code128Text(b []byte) string {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] == '{' && i+1 < len(b) {
			i++
			if b[i] == '{' {
				out = append(out, '{')
			}
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

func raster(data []byte, w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w*8, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w*8; x++ {
			c := uint8(255)
			if data[y*w+x/8]&(0x80>>(x%8)) != 0 {
				c = 0
			}
			img.Pix[y*img.Stride+x] = c
		}
	}
	return img
}
