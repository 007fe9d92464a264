package screens

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aslcns/totem/drivers/lcd"
	"github.com/aslcns/totem/hal"
)

// Every screen of the catalogue fits the 20x4 display once its verbs are
// filled with the widest values the firmware passes.
func TestScreensFit(t *testing.T) {
	for key, s := range screens {
		for lang, rows := range s.rows {
			if len(rows) > 4 {
				t.Errorf("%s/%d: %d rows", key, lang, len(rows))
			}
			for _, r := range rows {
				filled := r
				if n := countVerbs(r); n > 0 {
					args := make([]any, n)
					for i := range args {
						args[i] = 88
						if strings.Contains(r, "%s") {
							args[i] = "261123000000042"[:min(15, 20-utf8.RuneCountInString(r)+2)]
						}
					}
					filled = fmt.Sprintf(r, args...)
				}
				if n := utf8.RuneCountInString(filled); n > 20 {
					t.Errorf("%s/%d: %q is %d columns", key, lang, filled, n)
				}
			}
		}
	}
	for _, code := range ConsentCodes {
		for l := range 2 {
			// "name: Sì" on one row of the summary; the explanation on
			// one row of the consent screen.
			if s := Lang(l).Text(code); s == code || utf8.RuneCountInString(s)+4 > 20 {
				t.Errorf("%s: %q missing or too long for the summary", code, s)
			}
			if s := Lang(l).Text("why_" + code); s == "why_"+code || utf8.RuneCountInString(s) > 20 {
				t.Errorf("why_%s: %q missing or longer than a row", code, s)
			}
			if s := Lang(l).Text("rcpt_" + code); !strings.HasPrefix(s, Lang(l).Text(code)+" (") {
				t.Errorf("rcpt_%s: %q does not use the consent's one name", code, s)
			}
		}
	}
	if got := (IT).Screen("done"); got[0] != "Accolta. Protocollo:" {
		t.Fatalf("catalogue lookup: %q", got)
	}
}

// Every string of the catalogue shows its accents on the common LCD ROM
// (A00, with our CGRAM glyphs) and on A02.
func TestCatalogueOnLCD(t *testing.T) {
	for _, rom := range []lcd.ROM{lcd.A00, lcd.A02} {
		check := func(where, s string) {
			if m := rom.Missing(s); len(m) > 0 {
				t.Errorf("%v: %s %q: no glyph for %q", rom, where, s, m)
			}
		}
		for key, s := range screens {
			for _, rows := range s.rows {
				for _, r := range rows {
					check(key, r)
				}
			}
		}
		for key, tx := range texts {
			for _, s := range tx {
				check(key, s)
			}
		}
		for code, tx := range rejections {
			for _, s := range tx {
				check(code, s)
			}
		}
	}
	if len(lcd.A00.Missing("Sì è")) != 0 || len(lcd.A00.Missing("Ω")) == 0 {
		t.Fatal("ROM map check is not discriminating")
	}
}

// Screens are data: every key a screen hints at is bound, and every screen
// that takes input has Back and Cancel (product.md).
func TestScreenKeys(t *testing.T) {
	hint := regexp.MustCompile(`(^|\s)([0-9A-D*#])=`)
	for name, s := range screens {
		for lang, rows := range s.rows {
			for _, r := range rows {
				for _, m := range hint.FindAllStringSubmatch(r, -1) {
					if !Bound(name, hal.Key(m[2][0])) {
						t.Errorf("%s/%d: %q hints at %s, which the screen does not bind", name, lang, r, m[2])
					}
				}
			}
		}
		for _, k := range s.keys {
			if !hal.Key(k).Valid() {
				t.Errorf("%s binds %q, not a keypad key", name, k)
			}
		}
		if s.keys != "" && (!Bound(name, hal.KeyBack) || !Bound(name, hal.KeyCancel)) {
			t.Errorf("%s takes input but lacks Back or Cancel (keys %q)", name, s.keys)
		}
	}
	if Bound("idle", '1') || !Bound("consent", '2') || Bound("consent", '3') {
		t.Fatal("Bound is not discriminating")
	}
}

// Every screen with a PIN or PUK field is secret (a keyboard's digits are
// refused there) and no other; the text entry's hints fit a row.
func TestSecretScreens(t *testing.T) {
	n := 0
	for name, s := range screens {
		field := false
		for _, rows := range s.rows {
			for _, r := range rows {
				field = field || strings.Contains(r, "PIN: %s") || strings.Contains(r, "PUK: %s")
			}
		}
		if field != s.secret {
			t.Errorf("%s: a PIN/PUK field %v, secret %v", name, field, s.secret)
		}
		if s.secret {
			n++
		}
		if s.secret && s.typed {
			t.Errorf("%s: secret and typed on a keyboard", name)
		}
	}
	if n < 5 || !Secret("op_pin") || Secret("team") || !Typed("text") || Typed("pin") {
		t.Fatalf("%d secret screens: the check is not discriminating", n)
	}
	if !Bound("text", hal.Char('x')) || Bound("pin", hal.Char('1')) || !Bound("text", hal.KeyLeft) || Bound("menu", hal.KeyLeft) {
		t.Error("Bound ignores typed")
	}
	for _, k := range []string{"hint_name", "hint_upper", "hint_email"} {
		for _, s := range texts[k] {
			if utf8.RuneCountInString(s) > 20 {
				t.Errorf("%s: %q is wider than the display", k, s)
			}
		}
	}
	for _, s := range texts["hint_next"] {
		if n := utf8.RuneCountInString("1: .@[-]_1 " + s); n > 20 {
			t.Errorf("hint_next %q: the cycling hint is %d columns", s, n)
		}
	}
}
