package main

import (
	"strings"
	"testing"

	"github.com/skip2/go-qrcode"
)

// The half-block drawing holds the QR code's modules exactly: two rows a
// line, light modules drawn (or dark ones with --light).
func TestQRText(t *testing.T) {
	uri := "otpauth://totp/Totem%20ASL:1001%20Tecnico?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Totem+ASL"
	q, err := qrcode.New(uri, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	bm := q.Bitmap()
	for _, light := range []bool{false, true} {
		txt, err := qrText(uri, light)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(txt, "\n"), "\n")
		if len(lines) != (len(bm)+1)/2 {
			t.Fatalf("%d lines for %d rows", len(lines), len(bm))
		}
		for i, l := range lines {
			cells := []rune(l)
			if len(cells) != len(bm) {
				t.Fatalf("line %d: %d columns, want %d", i, len(cells), len(bm))
			}
			for x, c := range cells {
				top := c == '█' || c == '▀'
				bottom := c == '█' || c == '▄'
				if top != (bm[2*i][x] == light) {
					t.Fatalf("light=%v: module (%d,%d) wrong", light, 2*i, x)
				}
				if 2*i+1 < len(bm) && bottom != (bm[2*i+1][x] == light) {
					t.Fatalf("light=%v: module (%d,%d) wrong", light, 2*i+1, x)
				}
			}
		}
	}
}
