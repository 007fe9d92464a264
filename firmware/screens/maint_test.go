package screens

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The maintenance screens are in the catalogue in both languages; the
// words they fill in fit their rows: one row of 20, or two for m_two_.
func TestMaintenanceCatalogue(t *testing.T) {
	for _, key := range []string{"maint_id", "maint_totp", "maint_unlock", "maint_menu", "maint_menu_2", "maint_menu_3",
		"maint_printer", "maint_card_info", "maint_net", "maint_clock", "maint_linkerr", "maint_queue", "maint_sendlog",
		"maint_enroll", "maint_cred_ko", "maint_version"} {
		s, ok := screens[key]
		if !ok {
			t.Fatalf("%s missing", key)
		}
		for lang := range s.rows {
			if len(s.rows[lang]) != 4 || strings.Join(s.rows[lang], "") == "" {
				t.Errorf("%s/%d: %q", key, lang, s.rows[lang])
			}
		}
		if strings.Join(s.rows[IT], "|") == strings.Join(s.rows[EN], "|") {
			t.Errorf("%s: the same in both languages", key)
		}
	}
	for key, tx := range maintTexts {
		for lang, s := range tx {
			if s == "" {
				t.Errorf("%s/%d empty", key, lang)
			}
			if strings.HasPrefix(key, "m_two_") {
				if rows := Wrap(s, 20); len(rows) > 2 {
					t.Errorf("%s/%d: %q takes %d rows", key, lang, s, len(rows))
				}
			} else if n := utf8.RuneCountInString(s); n > 20 || strings.HasPrefix(key, "m_paper_") && n > 20-len("Carta: ") {
				t.Errorf("%s/%d: %q is %d columns", key, lang, s, n)
			}
		}
	}
}

func TestWrap(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"credenziali bloccate (sblocco da ops)", "credenziali bloccate|(sblocco da ops)"},
		{"  a  b ", "a b"},
		{"", ""},
		{strings.Repeat("x", 25), strings.Repeat("x", 20) + "|xxxxx"},
	} {
		if got := strings.Join(Wrap(c.in, 20), "|"); got != c.want {
			t.Errorf("Wrap(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
