package escpos

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aslcns/totem/hal"
	"github.com/skip2/go-qrcode"
)

// Command bytes. Commands are always built as byte slices: fmt's %c would
// emit UTF-8.
const (
	esc = 0x1b
	gs  = 0x1d
	fs  = 0x1c
	dle = 0x10
	lf  = 0x0a
)

// Limits of the encoder.
const (
	maxQRData      = 7089 // numeric capacity of version 40; the printer refuses more
	maxBarcodeData = 253
	qrModule       = 6 // dots per QR module (native)
	rasterModule   = 4 // dots per module of a raster QR: 0.5 mm, a third of the bytes of 6
)

// ErrUnprintable reports a block the printer cannot print (empty QR, a
// barcode with characters outside CODE128 set B…).
var ErrUnprintable = errors.New("escpos: unprintable block")

// Preamble returns the bytes that start every job: ESC @, FS . on clones,
// ESC t with the profile's table.
func Preamble(p Profile) []byte {
	b := []byte{esc, '@'}
	if p.Clone {
		b = append(b, fs, '.')
	}
	return append(b, esc, 't', p.CodePage.Table)
}

// Encode lays doc out for p and returns the job's bytes: the preamble, the
// blocks and a feed-and-cut.
func Encode(doc *hal.Doc, p Profile) ([]byte, error) {
	if p.Cols <= 0 {
		return nil, fmt.Errorf("escpos: encode: profile %q has no columns", p.Name)
	}
	b, _, err := encode(doc, p)
	return b, err
}

// encode returns the job and the offsets where a command ends: the only
// places a status poll may be slipped in (a DLE EOT inside a command's
// data would corrupt it).
func encode(doc *hal.Doc, p Profile) ([]byte, []int, error) {
	if p.Cols <= 0 {
		return nil, nil, fmt.Errorf("escpos: encode: profile %q has no columns", p.Name)
	}
	e := encoder{p: p, buf: Preamble(p)}
	e.mark()
	for i, bl := range doc.Blocks {
		if err := e.block(bl); err != nil {
			return nil, nil, fmt.Errorf("escpos: encode: block %d: %w", i, err)
		}
	}
	e.style(false, false)
	e.align(hal.Left)
	if p.Cutter {
		e.buf = append(e.buf, gs, 'V', 66, 0) // feed to the blade, partial cut
	} else {
		e.buf = append(e.buf, esc, 'd', 4) // feed past the tear bar
	}
	e.mark()
	return e.buf, e.marks, nil
}

// encoder tracks the printer's mode so it sends only changes.
type encoder struct {
	p     Profile
	buf   []byte
	marks []int // ends of commands
	al    hal.Align
	bold  bool
	large bool
}

func (e *encoder) mark() {
	if n := len(e.marks); n == 0 || e.marks[n-1] != len(e.buf) {
		e.marks = append(e.marks, len(e.buf))
	}
}

func (e *encoder) align(a hal.Align) {
	if a == e.al {
		return
	}
	e.al = a
	e.buf = append(e.buf, esc, 'a', byte(a))
}

func (e *encoder) style(bold, large bool) {
	if bold != e.bold {
		e.bold = bold
		e.buf = append(e.buf, esc, 'E', b2n(bold))
	}
	if large != e.large {
		e.large = large
		var n byte
		if large {
			n = 0x11 // double width and double height
		}
		e.buf = append(e.buf, gs, '!', n)
	}
}

func b2n(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (e *encoder) text(s string) {
	b, _ := e.p.CodePage.Encode(s)
	e.buf = append(e.buf, b...)
}

func (e *encoder) block(bl hal.Block) error {
	switch bl.Kind {
	case hal.Text:
		cols := e.p.Cols
		if bl.Large {
			cols /= 2
		}
		e.align(bl.Align)
		e.style(bl.Bold, bl.Large)
		for _, line := range hal.Wrap(bl.Text, cols) {
			e.text(line)
			e.buf = append(e.buf, lf)
			e.mark()
		}
	case hal.Rule:
		e.align(hal.Left)
		e.style(false, false)
		e.buf = append(e.buf, strings.Repeat("-", e.p.Cols)...)
		e.buf = append(e.buf, lf)
		e.mark()
	case hal.Feed:
		e.buf = append(e.buf, lf)
		e.mark()
	case hal.QR:
		return e.qr(bl.Text)
	case hal.Barcode:
		return e.barcode(bl.Text)
	default:
		return fmt.Errorf("%w: kind %d", ErrUnprintable, bl.Kind)
	}
	return nil
}

func (e *encoder) qr(data string) error {
	if data == "" || len(data) > maxQRData {
		return fmt.Errorf("%w: QR data of %d bytes", ErrUnprintable, len(data))
	}
	e.style(false, false)
	e.align(hal.Center)
	if e.p.NativeQR {
		n := len(data) + 3
		e.buf = append(e.buf,
			gs, '(', 'k', 4, 0, 0x31, 0x41, 0x32, 0x00, // model 2
			gs, '(', 'k', 3, 0, 0x31, 0x43, qrModule, // module size
			gs, '(', 'k', 3, 0, 0x31, 0x45, 0x31, // ECC M
			gs, '(', 'k', byte(n), byte(n>>8), 0x31, 0x50, 0x30) // store
		e.buf = append(e.buf, data...)
		e.buf = append(e.buf, gs, '(', 'k', 3, 0, 0x31, 0x51, 0x30) // print
		e.buf = append(e.buf, lf)
		e.mark()
		return nil
	}
	q, err := qrcode.New(data, qrcode.Medium)
	if err != nil {
		return fmt.Errorf("%w: QR: %v", ErrUnprintable, err)
	}
	// The quiet zone above and below is a paper feed (ESC J), not blank
	// raster rows: a raster costs 10 bits a byte on the line.
	bm := q.Bitmap()
	scale := rasterModule
	for scale > 1 && len(bm[0])*scale > e.p.Dots {
		scale--
	}
	top, bottom := 0, len(bm)
	for top < bottom && !slices.Contains(bm[top], true) {
		top++
	}
	for bottom > top && !slices.Contains(bm[bottom-1], true) {
		bottom--
	}
	e.buf = append(e.buf, esc, 'J', byte(top*scale))
	e.mark()
	for _, band := range Raster(bm[top:bottom], scale, e.p.Dots, max(e.p.Buffer/2, 64)) {
		e.buf = append(e.buf, band...)
		e.mark()
	}
	e.buf = append(e.buf, esc, 'J', byte((len(bm)-bottom)*scale))
	e.buf = append(e.buf, lf)
	e.mark()
	return nil
}

// Raster returns GS v 0 commands printing bitmap (true = black) with each
// module scale dots wide, reduced so the image fits maxDots, in horizontal
// bands of at most maxBytes of image data each, so that a small receive
// buffer never has to hold a whole image.
func Raster(bitmap [][]bool, scale, maxDots, maxBytes int) [][]byte {
	if len(bitmap) == 0 {
		return nil
	}
	w := len(bitmap[0])
	for scale > 1 && w*scale > maxDots {
		scale--
	}
	dotsW := w * scale
	bytesW := (dotsW + 7) / 8
	var rows [][]byte
	for _, mrow := range bitmap {
		row := make([]byte, bytesW)
		for x := 0; x < dotsW; x++ {
			if x/scale < len(mrow) && mrow[x/scale] {
				row[x/8] |= 0x80 >> (x % 8)
			}
		}
		for range scale {
			rows = append(rows, row)
		}
	}
	per := max(maxBytes/bytesW, 1)
	var bands [][]byte
	for len(rows) > 0 {
		n := min(per, len(rows))
		b := []byte{gs, 'v', '0', 0, byte(bytesW), byte(bytesW >> 8), byte(n), byte(n >> 8)}
		for _, r := range rows[:n] {
			b = append(b, r...)
		}
		bands = append(bands, b)
		rows = rows[n:]
	}
	return bands
}

func (e *encoder) barcode(data string) error {
	if data == "" || len(data) > maxBarcodeData/2 {
		return fmt.Errorf("%w: barcode data of %d bytes", ErrUnprintable, len(data))
	}
	var payload []byte
	payload = append(payload, '{', 'B')
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: barcode byte %#x outside CODE128 set B", ErrUnprintable, c)
		}
		if c == '{' {
			payload = append(payload, '{') // "{{" is a literal brace
		}
		payload = append(payload, c)
	}
	e.style(false, false)
	e.align(hal.Center)
	e.buf = append(e.buf,
		gs, 'h', 80, // height in dots
		gs, 'w', 2, // module width
		gs, 'H', 2, // human-readable text below
		gs, 'k', 73, byte(len(payload)))
	e.buf = append(e.buf, payload...)
	e.buf = append(e.buf, lf)
	e.mark()
	return nil
}

// TestDoc is the test receipt of "totemd printer test": every accented
// letter, the euro sign, sizes, alignments, a QR code and a barcode.
func TestDoc(p Profile) *hal.Doc {
	return &hal.Doc{Title: "test", Blocks: []hal.Block{
		{Kind: hal.Text, Text: "TOTEM ASL", Align: hal.Center, Bold: true, Large: true},
		{Kind: hal.Text, Text: "Stampa di prova / Test print", Align: hal.Center},
		{Kind: hal.Rule},
		{Kind: hal.Text, Text: "Profilo: " + p.Name + " (" + p.CodePage.Name + ")"},
		{Kind: hal.Text, Text: "à è é ì ò ù"},
		{Kind: hal.Text, Text: "À È É Ì Ò Ù"},
		{Kind: hal.Text, Text: "Importo: 12,50 €"},
		{Kind: hal.Text, Text: "Grassetto / bold", Bold: true},
		{Kind: hal.Text, Text: "Grande", Large: true},
		{Kind: hal.Text, Text: "a destra", Align: hal.Right},
		{Kind: hal.Rule},
		{Kind: hal.QR, Text: "https://www.asl.example.it/p/TEST-0001"},
		{Kind: hal.Barcode, Text: "TEST-0001"},
		{Kind: hal.Feed},
		{Kind: hal.Text, Text: "Fine della prova", Align: hal.Center},
	}}
}
