// Package screens is the catalogue of what the totem's 20x4 display shows,
// in Italian and English: each screen declared as data with its rows and
// the keys it answers to, the texts the flows wrap into pages — all in
// catalogue.toml, compiled in — and Format, which fills a screen's verbs.
// A test checks every screen fits the display, shows on the LCD's
// character ROMs and binds the keys it hints at. firmware shows them;
// nothing here touches a device.
package screens

import (
	"fmt"
	"strings"

	"github.com/aslcns/totem/hal"
)

// Every text a citizen can see lives in catalogue.toml, in Italian and
// English. Screens are at most 20 columns and 4 rows (a test checks every
// entry).

// Lang is a catalogue language.
type Lang int

// Languages.
const (
	IT Lang = iota
	EN
)

// ParseLang maps "it"/"en" to a Lang (Italian for anything else).
func ParseLang(s string) Lang {
	if s == "en" {
		return EN
	}
	return IT
}

type text [2]string // IT, EN

// screen is one screen of the catalogue, declared as data: its rows in
// each language (%-verbs filled in order by show) and the keys it answers
// to. Keys not listed are ignored while it is shown; every key a row hints
// at ("#=OK") is listed, and every screen that takes input has Back (*)
// and Cancel (D) — a test checks both.
type screen struct {
	rows [2][]string // IT, EN
	keys string      // bound keys; "" for screens that only inform
	// typed: a keyboard's characters and cursor keys are bound too (the
	// operator's text fields, assisted mode).
	typed bool
	// secret: what is typed here goes from the keypad to the chip only
	// (PIN, PUK): a keyboard's digits are refused. A test checks every
	// screen with a PIN or PUK field is secret.
	secret bool
}

// ConsentCodes are the consent codes the catalogue names.
var ConsentCodes = []string{"consultazione", "opposizione_pregresso", "alimentazione", "pregresso"}

// Screen returns the rows of screen key in l, with their %-verbs unfilled
// (Format fills them); an unknown key shows as itself.
func (l Lang) Screen(key string) []string {
	s, ok := screens[key]
	if !ok {
		return []string{key}
	}
	return append([]string(nil), s.rows[l]...)
}

// Has reports whether the catalogue has screen key.
func Has(key string) bool {
	_, ok := screens[key]
	return ok
}

// Bound reports whether screen name answers to k.
func Bound(name string, k hal.Key) bool {
	s := screens[name]
	if _, ok := k.Char(); ok || k == hal.KeyLeft || k == hal.KeyRight || k == hal.KeyDelete {
		return s.typed
	}
	return strings.IndexByte(s.keys, byte(k)) >= 0
}

// Typed reports whether screen name takes a keyboard's characters.
func Typed(name string) bool { return screens[name].typed }

// Secret reports whether what is typed on screen name goes to the chip
// only (PIN, PUK): from the keypad, never from a keyboard.
func Secret(name string) bool { return screens[name].secret }

// Text returns the text key in l; an unknown key shows as itself.
func (l Lang) Text(key string) string {
	t, ok := texts[key]
	if !ok {
		return key
	}
	return t[l]
}

// Format returns screen key in l with its %-verbs filled, in row order,
// from args; rows take as many arguments as they have verbs.
func Format(l Lang, key string, args ...any) []string {
	return fill(l.Screen(key), args)
}

// fill fills the %-verbs of rows, in row order, from args.
func fill(rows []string, args []any) []string {
	for i, r := range rows {
		n := countVerbs(r)
		if n > len(args) {
			n = len(args)
		}
		if n > 0 {
			rows[i] = fmt.Sprintf(r, args[:n]...)
			args = args[n:]
		}
	}
	return rows
}

func countVerbs(s string) int {
	n := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' {
			if s[i+1] != '%' {
				n++
			}
			i++
		}
	}
	return n
}
