package vprinter

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"strings"
	"unicode/utf8"

	"github.com/aslcns/totem/hal"
	"github.com/skip2/go-qrcode"
	"golang.org/x/image/font"
	"golang.org/x/image/font/inconsolata"
	"golang.org/x/image/math/fixed"
)

// Text lays the receipt out as plain text cols wide, like hal/sim.Render:
// double-width lines are aligned in half the columns, QR codes and
// barcodes shown as their data in brackets, images by their size.
func (r *Receipt) Text(cols int) string {
	var b strings.Builder
	for _, l := range r.Lines {
		var s string
		width := cols
		switch l.Kind {
		case QRLine:
			s = "[QR " + l.Data + "]"
		case BarcodeLine:
			s = "[|||| " + l.Data + " ||||]"
		case ImageLine:
			s = "[IMAGE " + itoa(l.Image.Bounds().Dx()) + "x" + itoa(l.Image.Bounds().Dy()) + "]"
		default:
			s = l.Text()
			if l.Wide() {
				width = cols / 2
			}
		}
		b.WriteString(l.Align.Pad(s, width))
		b.WriteByte('\n')
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// Geometry of the PNG: one column of font A is one 8×16 glyph cell.
const (
	cellW  = 8
	cellH  = 16
	margin = 16
)

// PNG renders the receipt as a thermal receipt would look: white paper,
// black text, QR codes drawn as modules. cols is the paper width in
// columns and dots the printable width in dots (images are scaled from
// dots to the page).
func (r *Receipt) PNG(cols, dots int) ([]byte, error) {
	if cols <= 0 {
		cols = 48
	}
	if dots <= 0 {
		dots = cols * 12
	}
	pageW := cols * cellW
	scale := float64(pageW) / float64(dots)

	// Height: lay out once to measure, then draw.
	h := margin
	for _, l := range r.Lines {
		h += lineHeight(l, scale)
	}
	h += margin * 3
	img := image.NewGray(image.Rect(0, 0, pageW+2*margin, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	y := margin
	for _, l := range r.Lines {
		drawLine(img, l, y, cols, scale)
		y += lineHeight(l, scale)
	}
	if r.Cut {
		for x := 0; x < img.Bounds().Dx(); x += 6 {
			for i := range 3 {
				img.SetGray(x+i, h-margin, color.Gray{Y: 140})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func lineHeight(l Line, scale float64) int {
	switch l.Kind {
	case QRLine:
		q, err := qrcode.New(l.Data, qrcode.Medium)
		if err != nil {
			return cellH
		}
		return len(q.Bitmap())*moduleSize(scale) + cellH/2
	case BarcodeLine:
		return 48 + cellH + cellH/2
	case ImageLine:
		return int(float64(l.Image.Bounds().Dy())*scale) + cellH/2
	}
	for _, s := range l.Spans {
		if s.Tall {
			return 2 * cellH
		}
	}
	return cellH
}

func moduleSize(scale float64) int {
	m := int(6*scale + 0.5) // six dots a module, as the driver asks
	return max(m, 1)
}

func xFor(a hal.Align, w, pageW int) int {
	switch a {
	case hal.Center:
		return margin + (pageW-w)/2
	case hal.Right:
		return margin + pageW - w
	}
	return margin
}

func drawLine(img *image.Gray, l Line, y, cols int, scale float64) {
	pageW := cols * cellW
	switch l.Kind {
	case QRLine:
		q, err := qrcode.New(l.Data, qrcode.Medium)
		if err != nil {
			return
		}
		bm := q.Bitmap()
		m := moduleSize(scale)
		x0 := xFor(l.Align, len(bm)*m, pageW)
		for my, row := range bm {
			for mx, black := range row {
				if black {
					fill(img, x0+mx*m, y+my*m, m, m)
				}
			}
		}
	case BarcodeLine:
		drawBarcode(img, l, y, pageW)
	case ImageLine:
		b := l.Image.Bounds()
		w, h := int(float64(b.Dx())*scale), int(float64(b.Dy())*scale)
		x0 := xFor(l.Align, w, pageW)
		for yy := 0; yy < h; yy++ {
			for xx := 0; xx < w; xx++ {
				sx, sy := int(float64(xx)/scale), int(float64(yy)/scale)
				if l.Image.GrayAt(sx, sy).Y < 128 {
					img.SetGray(x0+xx, y+yy, color.Gray{})
				}
			}
		}
	default:
		w := 0
		for _, s := range l.Spans {
			w += utf8.RuneCountInString(s.Text) * cellW * mul(s.Wide)
		}
		x := xFor(l.Align, w, pageW)
		lh := lineHeight(l, scale)
		for _, s := range l.Spans {
			x = drawSpan(img, s, x, y+lh)
		}
	}
}

func mul(b bool) int {
	if b {
		return 2
	}
	return 1
}

func fill(img *image.Gray, x, y, w, h int) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), image.Black, image.Point{}, draw.Src)
}

// drawSpan draws s with its baseline region ending at bottom and returns
// the x after it. Double sizes are drawn by scaling the 8×16 glyphs.
func drawSpan(img *image.Gray, s Span, x, bottom int) int {
	face := inconsolata.Regular8x16
	if s.Bold {
		face = inconsolata.Bold8x16
	}
	sx, sy := mul(s.Wide), mul(s.Tall)
	for _, r := range s.Text {
		cell := image.NewGray(image.Rect(0, 0, cellW, cellH))
		draw.Draw(cell, cell.Bounds(), image.White, image.Point{}, draw.Src)
		d := font.Drawer{Dst: cell, Src: image.Black, Face: face, Dot: fixed.P(0, face.Ascent)}
		d.DrawString(string(r))
		top := bottom - cellH*sy
		for yy := 0; yy < cellH*sy; yy++ {
			for xx := 0; xx < cellW*sx; xx++ {
				if cell.GrayAt(xx/sx, yy/sy).Y < 128 {
					img.SetGray(x+xx, top+yy, color.Gray{})
				}
			}
		}
		if s.Under {
			fill(img, x, bottom-1, cellW*sx, 1)
		}
		x += cellW * sx
	}
	return x
}

// drawBarcode draws bars from the data (an approximation of CODE128 with
// the same look and the readable text below, not a scannable symbol).
func drawBarcode(img *image.Gray, l Line, y, pageW int) {
	var bars []int                        // widths, alternating black and white
	bars = append(bars, 2, 1, 1, 2, 3, 2) // start
	for i := 0; i < len(l.Data); i++ {
		c := int(l.Data[i])
		bars = append(bars, 1+c%3, 1+(c/3)%3, 1+(c/9)%3, 1+(c/27)%2, 1+(c/5)%3, 1+(c/7)%2)
	}
	bars = append(bars, 2, 3, 3, 1, 1, 1, 2) // stop
	w := 0
	for _, b := range bars {
		w += b
	}
	x := xFor(l.Align, w, pageW)
	for i, b := range bars {
		if i%2 == 0 {
			fill(img, x, y, b, 48)
		}
		x += b
	}
	text := Span{Text: l.Data}
	tw := utf8.RuneCountInString(l.Data) * cellW
	drawSpan(img, text, xFor(l.Align, tw, pageW), y+48+cellH)
}
