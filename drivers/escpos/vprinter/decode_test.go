package vprinter

import (
	"bytes"
	"image/png"
	"strings"
	"testing"

	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/hal"
)

func TestDecodeStylesAndSymbols(t *testing.T) {
	in := []byte("\x1b@\x1bt\x13\x1ba\x01\x1bE\x01\x1d!\x11Grande\n\x1bE\x00\x1d!\x00\x1ba\x00")
	in = append(in, "citt\x85 \xd5 \xd4\n"...)
	in = append(in, 0x1d, 0x28, 0x6b, 0x06, 0x00, 0x31, 0x50, 0x30, 'A', 'B', 'C',
		0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x51, 0x30, '\n',
		0x1d, 0x6b, 73, 5, '{', 'B', 'X', '{', '{', '\n',
		0x10, 0x04, 0x01, // status request: not printed
		'\n', 0x1d, 0x56, 0x42, 0x00)
	var cmds []Command
	d := NewDecoder()
	d.OnCommand = func(c Command) { cmds = append(cmds, c) }
	// Any split of the stream must decode the same.
	for i := range in {
		d.Write(in[i : i+1])
	}
	rs := d.Receipts()
	if len(rs) != 1 || !rs[0].Cut {
		t.Fatalf("receipts %+v", rs)
	}
	got := rs[0].Text(20)
	want := "  Grande\ncittà € È\n[QR ABC]\n[|||| X{ ||||]\n\n"
	if got != want {
		t.Errorf("text:\n%q\nwant\n%q", got, want)
	}
	l := rs[0].Lines[0]
	if l.Align != hal.Center || !l.Spans[0].Bold || !l.Spans[0].Wide || !l.Spans[0].Tall {
		t.Errorf("first line %+v", l)
	}
	if rs[0].Lines[1].Spans[0].Bold {
		t.Error("bold not reset")
	}
	if len(cmds) != 1 || cmds[0].DLEEOT != 1 {
		t.Errorf("commands %+v", cmds)
	}
}

func TestDecodeEncoderOutput(t *testing.T) {
	for _, p := range escpos.Profiles() {
		doc := escpos.TestDoc(p)
		b, err := escpos.Encode(doc, p)
		if err != nil {
			t.Fatal(err)
		}
		d := NewDecoder()
		d.Write(b)
		r := d.Flush()
		if len(d.Receipts()) != 1 || r == nil && !p.Cutter {
			t.Fatalf("%s: %d receipts", p.Name, len(d.Receipts()))
		}
		r = d.Receipts()[0]
		if d.Unknown != 0 {
			t.Errorf("%s: %d unknown commands", p.Name, d.Unknown)
		}
		text := r.Text(p.Cols)
		for _, s := range []string{"à è é ì ò ù", "À È É Ì Ò Ù", "12,50 €", "TEST-0001"} {
			if !strings.Contains(text, s) {
				t.Errorf("%s: no %q in\n%s", p.Name, s, text)
			}
		}
		img, err := r.PNG(p.Cols, p.Dots)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil || cfg.Width != p.Cols*cellW+2*margin || cfg.Height < 300 {
			t.Errorf("%s: PNG %+v %v", p.Name, cfg, err)
		}
	}
}

func TestConditionAnswers(t *testing.T) {
	for c := OK; c <= Silent; c++ {
		var st escpos.Status
		for n := byte(1); n <= 4; n++ {
			b, ok := c.Answer(n)
			if c == Silent {
				if ok {
					t.Errorf("silent answers %d", n)
				}
				continue
			}
			if err := st.Apply(n, b); err != nil {
				t.Errorf("%v: %v", c, err)
			}
		}
		asb, err := escpos.DecodeASB(c.asb())
		if err != nil {
			t.Errorf("%v: ASB %v", c, err)
		}
		if c != Silent && asb.HAL() != st.HAL() {
			t.Errorf("%v: ASB says %+v, DLE EOT %+v", c, asb.HAL(), st.HAL())
		}
		if back, err := ParseCondition(c.String()); err != nil || back != c {
			t.Errorf("ParseCondition(%q) = %v, %v", c.String(), back, err)
		}
	}
}

func FuzzDecoder(f *testing.F) {
	for _, name := range []string{"tm-t20", "clone80"} { // small seeds: clone58's raster QR slows minimizing
		p, _ := escpos.ProfileByName(name)
		b, _ := escpos.Encode(escpos.TestDoc(p), p)
		f.Add(b)
	}
	for _, band := range escpos.Raster([][]bool{{true, false}, {false, true}}, 2, 384, 64) {
		f.Add(append([]byte{0x1b, 0x40}, band...))
	}
	f.Add([]byte{0x1d, 0x76, 0x30, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Add([]byte{0x1d, 0x28, 0x6b, 0xff, 0xff, 0x31})
	f.Add([]byte{0x1d, 0x6b, 0x02, '1', '2'})
	f.Add([]byte{0x1b, 0x64, 0xff, 0x1d, 0x56, 0x41})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder()
		d.OnCommand = func(Command) {}
		half := len(in) / 2
		d.Write(in[:half])
		d.Write(in[half:])
		d.Flush()
		if len(d.buf) > len(in) {
			t.Fatalf("buffered %d of %d bytes", len(d.buf), len(in))
		}
		for _, r := range d.Receipts() {
			_ = r.Text(32)
			if len(in) < 256 { // rendering is slow: keep fuzzing fast
				if _, err := r.PNG(32, 384); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
