package screens

import (
	"regexp"
	"strings"
)

// Speech output (EN 301 549 5.1.3): what the speaker says of a screen.
// A screen is spoken as its rows read, with the key legends in words;
// what fills its %-fields is spoken only where spokenArgs allows it, so a
// field added to the catalogue is silent until someone decides otherwise:
// the PIN and PUK (as digits or stars), the CF, names and every number the
// citizen or the operator types are never spoken.

// spokenArgs is, per screen, how many of its leading %-fields speech says
// (-1: all); the fields of screens not listed are left out.
var spokenArgs = map[string]int{
	"page":            -1, // refusals, rejections, the Guida
	"page_last":       -1,
	"consent":         -1, // the consent's number and label
	"pin_wrong":       -1, // tries left
	"puk_wrong":       -1,
	"too_short":       -1, // the length expected
	"too_short_exact": -1,
	"done":            -1, // the protocol number
	"revoke_done":     -1,
	"late_done":       -1, // the outcome arrived while the citizen is there
	"late_rejected":   -1,
	"no_receipt":      -1, // the printer's condition
	"decl_failed":     -1,
	"text":            1, // the field's title, not what is typed
}

// Code is the language's ISO 639-1 code, as a hal.Speaker takes it.
func (l Lang) Code() string {
	if l == EN {
		return "en"
	}
	return "it"
}

// Other is the other language of the catalogue (the language key's).
func (l Lang) Other() Lang {
	if l == EN {
		return IT
	}
	return EN
}

// pageMark is a menu's page number ("1/4 #=Avanti"), said as words
// rather than as two numbers.
var pageMark = regexp.MustCompile(`^([1-9])/([1-9]) `)

var pageWords = [2]string{"pagina $1 di $2. ", "page $1 of $2. "}

// legend puts the key legends in words.
var legend = [2]*strings.Replacer{
	strings.NewReplacer("#=", "cancelletto: ", "*=", "asterisco: ", "=", ": ", "/", " ", "...", ".", "€", " euro"),
	strings.NewReplacer("#=", "hash: ", "*=", "star: ", "=", ": ", "/", " ", "...", ".", "€", " euros"),
}

// Spoken is screen key in l as the speaker says it: its rows, with the
// fields spokenArgs allows filled from args and the others left out, the
// key legends in words.
func Spoken(l Lang, key string, args ...any) string {
	n, ok := spokenArgs[key]
	if !ok {
		n = 0
	}
	if n < 0 || n > len(args) {
		n = len(args)
	}
	rows := l.Screen(key)
	v := 0 // the fields' index, across rows
	for i, r := range rows {
		var b strings.Builder
		for j := 0; j < len(r); j++ {
			if r[j] != '%' || j+1 == len(r) {
				b.WriteByte(r[j])
				continue
			}
			j++
			switch {
			case r[j] == '%':
				b.WriteString("%%")
			case v < n:
				b.WriteByte('%')
				b.WriteByte(r[j])
				v++
			default:
				v++ // a silent field: its verb goes
			}
		}
		rows[i] = b.String()
	}
	return SpokenRows(l, fill(rows, args[:n]))
}

// SpokenRows is rows as the speaker says them (rows shown as they are,
// such as the consents' summary).
func SpokenRows(l Lang, rows []string) string {
	var words []string
	for _, r := range rows {
		r = pageMark.ReplaceAllString(r, pageWords[l])
		words = append(words, strings.Fields(legend[l].Replace(r))...)
	}
	return strings.Join(words, " ")
}
