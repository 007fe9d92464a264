package escpos

import (
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// CodePage is a printer character table: the number ESC t selects and
// the single-byte encoding it holds.
type CodePage struct {
	Table byte // n of ESC t n
	Name  string
	cm    *charmap.Charmap
}

// Character tables the profiles use. PC858 has € at 0xD5, Windows-1252 at
// 0x80, PC850 has no €.
var (
	PC437       = CodePage{Table: 0, Name: "PC437", cm: charmap.CodePage437}
	PC850       = CodePage{Table: 2, Name: "PC850", cm: charmap.CodePage850}
	Windows1252 = CodePage{Table: 16, Name: "WPC1252", cm: charmap.Windows1252}
	PC858       = CodePage{Table: 19, Name: "PC858", cm: charmap.CodePage858}
)

// CodePageByTable returns the code page ESC t n selects, and false for a
// table the driver does not know.
func CodePageByTable(n byte) (CodePage, bool) {
	for _, cp := range []CodePage{PC437, PC850, Windows1252, PC858} {
		if cp.Table == n {
			return cp, true
		}
	}
	return CodePage{}, false
}

// fallback spells characters a table may lack with ASCII. It is consulted
// only when the table cannot encode the rune itself.
var fallback = map[rune]string{
	'€': "EUR",
	'À': "A'", 'È': "E'", 'É': "E'", 'Ì': "I'", 'Ò': "O'", 'Ù': "U'",
	'à': "a'", 'è': "e'", 'é': "e'", 'ì': "i'", 'ò': "o'", 'ù': "u'",
	'‘': "'", '’': "'", '‚': ",", '“': "\"", '”': "\"", '„': "\"",
	'–': "-", '—': "-", '…': "...", '•': "*", '·': ".",
	'\u00a0': " ", '\u2009': " ", '\u202f': " ",
	'«': "\"", '»': "\"",
	'\t': " ",
}

// Encode converts s to the table's bytes. Characters the table lacks are
// spelled with the fallback table (€→EUR, È→E'…); anything else becomes
// '?'. It never emits a control byte: only LF survives below 0x20.
// replaced counts the characters that needed the fallback or '?'.
func (cp CodePage) Encode(s string) (b []byte, replaced int) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		if enc, ok := cp.encodeRune(r); ok {
			b = append(b, enc)
			continue
		}
		replaced++
		if fb, ok := fallback[r]; ok {
			for _, fr := range fb {
				if enc, ok := cp.encodeRune(fr); ok {
					b = append(b, enc)
				} else {
					b = append(b, '?')
				}
			}
			continue
		}
		b = append(b, '?')
	}
	return b, replaced
}

func (cp CodePage) encodeRune(r rune) (byte, bool) {
	switch {
	case r == '\n':
		return '\n', true
	case r >= 0x20 && r < 0x7f:
		return byte(r), true
	case r < 0x80 || r == utf8.RuneError || cp.cm == nil:
		return 0, false
	}
	b, ok := cp.cm.EncodeRune(r)
	if !ok || b < 0x80 || b == 0xff {
		// 0xFF is a non-breaking space in the IBM tables; keep it out.
		return 0, false
	}
	return b, true
}

// Decode converts table bytes back to text (for the virtual printer).
func (cp CodePage) Decode(b byte) rune {
	if b < 0x80 || cp.cm == nil {
		return rune(b)
	}
	return cp.cm.DecodeByte(b)
}

// Encodable reports whether s prints in p's code page without a single
// replacement.
func Encodable(s string, p Profile) bool {
	_, n := p.CodePage.Encode(s)
	return n == 0
}
