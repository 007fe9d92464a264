package escpos

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Samples are one doc per style feature and a full receipt.
func Samples() map[string]*hal.Doc {
	t := func(s string) hal.Block { return hal.Block{Kind: hal.Text, Text: s} }
	return map[string]*hal.Doc{
		"text":    {Title: "text", Blocks: []hal.Block{t("Buongiorno, ecco il riepilogo.")}},
		"accents": {Title: "accents", Blocks: []hal.Block{t("à è é ì ò ù À È É Ì Ò Ù €")}},
		"bold":    {Title: "bold", Blocks: []hal.Block{{Kind: hal.Text, Text: "Prenotazione confermata", Bold: true}, t("dettagli")}},
		"large":   {Title: "large", Blocks: []hal.Block{{Kind: hal.Text, Text: "Numero 042", Large: true}}},
		"align":   {Title: "align", Blocks: []hal.Block{{Kind: hal.Text, Text: "centro", Align: hal.Center}, {Kind: hal.Text, Text: "destra", Align: hal.Right}, t("sinistra")}},
		"wrap":    {Title: "wrap", Blocks: []hal.Block{t("La prestazione è prenotata presso l'ambulatorio di cardiologia, piano terra, sportello numero sette, dalle ore 8:30.")}},
		"rule":    {Title: "rule", Blocks: []hal.Block{t("sopra"), {Kind: hal.Rule}, {Kind: hal.Feed}, t("sotto")}},
		"qr":      {Title: "qr", Blocks: []hal.Block{{Kind: hal.QR, Text: "ASL-2026-000123"}}},
		"barcode": {Title: "barcode", Blocks: []hal.Block{{Kind: hal.Barcode, Text: "P2026{000123}"}}},
		"receipt": Receipt(),
	}
}

// Receipt is a full sample receipt.
func Receipt() *hal.Doc {
	return &hal.Doc{Title: "prenotazione", Blocks: []hal.Block{
		{Kind: hal.Text, Text: "ASL Roma 1", Align: hal.Center, Bold: true, Large: true},
		{Kind: hal.Text, Text: "Totem 07 - Poliambulatorio Via Luzzatti", Align: hal.Center},
		{Kind: hal.Rule},
		{Kind: hal.Text, Text: "PRENOTAZIONE", Align: hal.Center, Bold: true},
		{Kind: hal.Text, Text: "Protocollo: 2026/000123"},
		{Kind: hal.Text, Text: "Data: 23/11/2026 10:42"},
		{Kind: hal.Text, Text: "Assistito: RSS***80A01H501U"},
		{Kind: hal.Text, Text: "Ticket da pagare: 36,15 € - è possibile pagare allo sportello o con pagoPA."},
		{Kind: hal.Rule},
		{Kind: hal.QR, Text: "https://asl.example.it/r/2026000123"},
		{Kind: hal.Barcode, Text: "2026000123"},
		{Kind: hal.Feed},
		{Kind: hal.Text, Text: "Documento non fiscale. Conservare la ricevuta.", Align: hal.Center},
	}}
}

// escape shows bytes as text for a golden file: printable ASCII as is,
// everything else as \xNN, a line break after each LF.
func escape(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		if c == gs && bytes.HasPrefix(b[i:], []byte{gs, 'v', '0'}) && i > 0 && b[i-1] != lf {
			s.WriteByte('\n') // one raster band a line
		}
		switch {
		case c == '\\':
			s.WriteString(`\\`)
		case c >= 0x20 && c < 0x7f:
			s.WriteByte(c)
		default:
			fmt.Fprintf(&s, `\x%02X`, c)
			if c == lf {
				s.WriteByte('\n')
			}
		}
	}
	s.WriteByte('\n')
	return s.String()
}

func TestGolden(t *testing.T) {
	for name, doc := range Samples() {
		for _, p := range Profiles() {
			t.Run(name+"/"+p.Name, func(t *testing.T) {
				b, err := Encode(doc, p)
				if err != nil {
					t.Fatal(err)
				}
				got := escape(b)
				path := filepath.Join("testdata", name+"."+p.Name+".golden")
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if got != string(want) {
					t.Errorf("bytes differ from %s (run go test -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
				}
			})
		}
	}
}

func TestSamplesEncodeWithoutReplacement(t *testing.T) {
	docs := Samples()
	for _, p := range Profiles() {
		docs["test-"+p.Name] = TestDoc(p)
	}
	for name, doc := range docs {
		for _, p := range Profiles() {
			for _, bl := range doc.Blocks {
				if bl.Kind == hal.Text && !Encodable(bl.Text, p) {
					t.Errorf("%s on %s: %q needs a replacement", name, p.Name, bl.Text)
				}
			}
		}
	}
}

func TestCodePages(t *testing.T) {
	tests := []struct {
		cp       CodePage
		in       string
		want     []byte
		replaced int
	}{
		{PC858, "àèéìòù", []byte{0x85, 0x8a, 0x82, 0x8d, 0x95, 0x97}, 0},
		{PC858, "€È", []byte{0xd5, 0xd4}, 0},
		{PC850, "àèéìòù", []byte{0x85, 0x8a, 0x82, 0x8d, 0x95, 0x97}, 0},
		{PC850, "12 €", []byte("12 EUR"), 1},
		{PC437, "È", []byte("E'"), 1},
		{PC437, "è", []byte{0x8a}, 0},
		{Windows1252, "€ è", []byte{0x80, ' ', 0xe8}, 0},
		{PC858, "☃ ok", []byte("? ok"), 1},
		{PC858, "a\x1ab\x00c\td", []byte("a?b?c d"), 3},
		{PC858, "“ciao” – sì…", []byte("\"ciao\" - s\x8d..."), 4},
		{PC858, "\xff", []byte("?"), 1},
	}
	for _, tt := range tests {
		got, n := tt.cp.Encode(tt.in)
		if !bytes.Equal(got, tt.want) || n != tt.replaced {
			t.Errorf("%s.Encode(%q) = % x, %d; want % x, %d", tt.cp.Name, tt.in, got, n, tt.want, tt.replaced)
		}
	}
}

func TestPreamble(t *testing.T) {
	for name, want := range map[string][]byte{
		"tm-t20":  {0x1b, 0x40, 0x1b, 0x74, 0x13},
		"clone80": {0x1b, 0x40, 0x1c, 0x2e, 0x1b, 0x74, 0x10},
	} {
		p, err := ProfileByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := Preamble(p); !bytes.Equal(got, want) {
			t.Errorf("%s: % x, want % x", name, got, want)
		}
	}
	if _, err := ProfileByName("nope"); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestNativeQR(t *testing.T) {
	p, _ := ProfileByName("tm-t20")
	b, err := Encode(&hal.Doc{Blocks: []hal.Block{{Kind: hal.QR, Text: "ABC"}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x1b, 0x61, 0x01,
		0x1d, 0x28, 0x6b, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00,
		0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x43, 0x06,
		0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x45, 0x31,
		0x1d, 0x28, 0x6b, 0x06, 0x00, 0x31, 0x50, 0x30, 'A', 'B', 'C',
		0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x51, 0x30, 0x0a,
	}
	if !bytes.Contains(b, want) {
		t.Errorf("QR sequence missing:\n% x", b)
	}
	if !bytes.HasSuffix(b, []byte{0x1d, 0x56, 0x42, 0x00}) {
		t.Errorf("no feed-and-cut at the end: % x", b[len(b)-8:])
	}
}

func TestRasterQRFallback(t *testing.T) {
	p, _ := ProfileByName("clone58")
	b, err := Encode(&hal.Doc{Blocks: []hal.Block{{Kind: hal.QR, Text: "ASL-2026-000123"}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte{0x1d, 0x28, 0x6b}) {
		t.Error("native QR sent to a printer without it")
	}
	i := bytes.Index(b, []byte{0x1d, 0x76, 0x30, 0x00})
	if i < 0 {
		t.Fatal("no GS v 0 raster")
	}
	w := int(b[i+4]) | int(b[i+5])<<8
	h := int(b[i+6]) | int(b[i+7])<<8
	if w*8 > p.Dots || w == 0 || h == 0 || len(b) < i+8+w*h {
		t.Errorf("raster %d bytes × %d rows does not fit %d dots or the stream", w, h, p.Dots)
	}
}

func TestBarcode(t *testing.T) {
	p, _ := ProfileByName("tm-t88")
	b, err := Encode(&hal.Doc{Blocks: []hal.Block{{Kind: hal.Barcode, Text: "A{1"}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x1d, 0x68, 80, 0x1d, 0x77, 2, 0x1d, 0x48, 2, 0x1d, 0x6b, 73, 6, '{', 'B', 'A', '{', '{', '1', 0x0a}
	if !bytes.Contains(b, want) {
		t.Errorf("barcode: % x", b)
	}
	for _, bad := range []string{"", "è", "a\nb"} {
		if _, err := Encode(&hal.Doc{Blocks: []hal.Block{{Kind: hal.Barcode, Text: bad}}}, p); err == nil {
			t.Errorf("barcode %q accepted", bad)
		}
	}
	if _, err := Encode(&hal.Doc{Blocks: []hal.Block{{Kind: hal.QR}}}, p); err == nil {
		t.Error("empty QR accepted")
	}
}

func TestLargeHalvesColumns(t *testing.T) {
	p, _ := ProfileByName("clone58") // 32 columns, 16 when large
	b, err := Encode(&hal.Doc{Blocks: []hal.Block{{Kind: hal.Text, Text: "uno due tre quattro cinque", Large: true}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte{0x1d, 0x21, 0x11, 'u', 'n', 'o', ' ', 'd', 'u', 'e', ' ', 't', 'r', 'e', 0x0a, 'q'}) {
		t.Errorf("large text not wrapped at 16 columns: %s", escape(b))
	}
}

// TestWireTimes logs bytes and wire time per sample and profile (go test
// -v -run WireTimes) and checks that no printer with native QR gets a
// raster image.
func TestWireTimes(t *testing.T) {
	for _, name := range []string{"receipt", "qr"} {
		for _, p := range Profiles() {
			b, err := Encode(Samples()[name], p)
			if err != nil {
				t.Fatal(err)
			}
			if p.NativeQR && bytes.Contains(b, []byte{gs, 'v', '0'}) {
				t.Errorf("%s on %s: raster image on a printer with native QR", name, p.Name)
			}
			t.Logf("%-8s %-8s %5d bytes  9600: %6v  19200: %6v  115200: %6v", name, p.Name, len(b),
				wire(len(b), 9600), wire(len(b), 19200), wire(len(b), 115200))
		}
	}
}

func wire(n, baud int) time.Duration {
	return (Profile{Baud: baud}).WireTime(n).Round(time.Millisecond)
}

func TestChunks(t *testing.T) {
	var got [][2]int
	for off, end := range chunks([]int{5, 9, 30, 31, 40}, 10) {
		got = append(got, [2]int{off, end})
	}
	want := [][2]int{{0, 30}, {30, 40}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chunks = %v, want %v", got, want)
	}
}

func FuzzEncodeText(f *testing.F) {
	for _, s := range []string{"àèéìòù €", "È\x1a\x00", "☃\t\r\n", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, cp := range []CodePage{PC437, PC850, Windows1252, PC858} {
			b, n := cp.Encode(s)
			for _, c := range b {
				if c < 0x20 && c != '\n' || c == 0x7f {
					t.Fatalf("%s: control byte %#x from %q", cp.Name, c, s)
				}
			}
			if n == 0 && !bytes.Equal(b, []byte(s)) {
				// every rune encoded itself: decoding must give s back
				var back []rune
				for _, c := range b {
					back = append(back, cp.Decode(c))
				}
				if string(back) != s {
					t.Fatalf("%s: %q → % x → %q", cp.Name, s, b, string(back))
				}
			}
		}
	})
}
