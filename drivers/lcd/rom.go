package lcd

// ROM is the character generator ROM of an HD44780 module, printed as the
// suffix of the controller's part number (HD44780UA00, …A02).
type ROM int

// ROMs.
const (
	// A00 is the Japanese ROM of most modules: ASCII with ¥ for backslash,
	// katakana above 0x80, no Italian accents. à è é ì ò ù È € are custom
	// CGRAM glyphs.
	A00 ROM = iota
	// A02 is the European ROM: ASCII and, from 0xC0, the Latin-1 accented
	// letters at their Latin-1 codes. Only € is a custom glyph.
	A02
)

func (r ROM) String() string {
	switch r {
	case A00:
		return "A00"
	case A02:
		return "A02"
	}
	return "unknown"
}

// glyph is a 5x8 custom character: one byte per pixel row, bit 4 leftmost.
type glyph struct {
	r    rune
	rows [8]byte
}

// glyphs are the custom characters, in CGRAM order, that A00 needs for
// Italian. CGRAM holds 8.
var glyphs = []glyph{
	{'à', [8]byte{0b01000, 0b00100, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111, 0}},
	{'è', [8]byte{0b01000, 0b00100, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0}},
	{'é', [8]byte{0b00010, 0b00100, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0}},
	{'ì', [8]byte{0b01000, 0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b01110, 0}},
	{'ò', [8]byte{0b01000, 0b00100, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110, 0}},
	{'ù', [8]byte{0b01000, 0b00100, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101, 0}},
	{'€', [8]byte{0b00111, 0b01000, 0b11110, 0b01000, 0b11110, 0b01000, 0b00111, 0}},
	{'È', [8]byte{0b01000, 0b00100, 0b11111, 0b10000, 0b11110, 0b10000, 0b11111, 0}},
}

// euroGlyph is € alone, for A02.
var euroGlyph = []glyph{glyphs[6]}

// charset maps runes to the codes a ROM (plus its CGRAM glyphs) shows.
type charset struct {
	glyphs []glyph
	enc    map[rune]byte
	dec    [256]rune // 0: the code shows nothing we name
}

func newCharset(rom ROM) *charset {
	cs := &charset{enc: map[rune]byte{}}
	add := func(r rune, b byte) {
		cs.enc[r] = b
		if cs.dec[b] == 0 {
			cs.dec[b] = r
		}
	}
	for b := byte(0x20); b <= 0x7D; b++ {
		add(rune(b), b)
	}
	switch rom {
	case A00:
		cs.glyphs = glyphs
		delete(cs.enc, '\\')
		cs.dec['\\'] = '¥'
		cs.enc['¥'] = '\\'
		for r, b := range map[rune]byte{'°': 0xDF, 'ä': 0xE1, 'ß': 0xE2, 'µ': 0xE4, 'ñ': 0xEE, 'ö': 0xEF, 'ü': 0xF5, '÷': 0xFD, '·': 0xA5} {
			add(r, b)
		}
	case A02:
		cs.glyphs = euroGlyph
		for r := rune(0xC0); r <= 0xFF; r++ {
			add(r, byte(r))
		}
	}
	for i, g := range cs.glyphs {
		add(g.r, byte(i))
	}
	return cs
}

// fold gives a plain letter for accented letters a ROM lacks.
var fold = map[rune]rune{
	'À': 'A', 'Á': 'A', 'Â': 'A', 'Ä': 'A', 'á': 'a', 'â': 'a', 'ä': 'a',
	'É': 'E', 'Ê': 'E', 'Ë': 'E', 'ê': 'e', 'ë': 'e',
	'Ì': 'I', 'Í': 'I', 'Î': 'I', 'Ï': 'I', 'í': 'i', 'î': 'i', 'ï': 'i',
	'Ò': 'O', 'Ó': 'O', 'Ô': 'O', 'Ö': 'O', 'ó': 'o', 'ô': 'o', 'ö': 'o',
	'Ù': 'U', 'Ú': 'U', 'Û': 'U', 'Ü': 'U', 'ú': 'u', 'û': 'u', 'ü': 'u',
	'Ç': 'C', 'ç': 'c', 'Ñ': 'N', 'ñ': 'n', 'È': 'E',
	'‘': '\'', '’': '\'', '“': '"', '”': '"', '–': '-', '—': '-', '…': '.',
}

// encode returns the code showing r, and whether it shows r itself (false:
// a plain letter or '?' stands in).
func (cs *charset) encode(r rune) (byte, bool) {
	if b, ok := cs.enc[r]; ok {
		return b, true
	}
	if f, ok := fold[r]; ok {
		if b, ok := cs.enc[f]; ok {
			return b, false
		}
	}
	return '?', false
}

// decode returns the rune code b shows, '?' when unnamed.
func (cs *charset) decode(b byte) rune {
	if r := cs.dec[b]; r != 0 {
		return r
	}
	return '?'
}

// Missing returns the runes of s that rom (with the glyphs this package
// loads) cannot show as themselves, once each, in order. An empty result
// means s renders faithfully.
func (r ROM) Missing(s string) []rune {
	cs := charsets[r]
	if cs == nil {
		cs = charsets[A00]
	}
	var out []rune
	seen := map[rune]bool{}
	for _, c := range s {
		if _, ok := cs.encode(c); !ok && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

var charsets = map[ROM]*charset{A00: newCharset(A00), A02: newCharset(A02)}
