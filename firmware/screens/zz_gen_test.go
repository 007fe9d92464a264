package screens

import (
	"os"
	"strings"
	"testing"
)

var genFiles = []string{"catalogue.go", "maint.go", "rejections.go"}

const genHeader = `# The totem's catalogue: every text its 20x4 display shows and the words
# the flows fill in, in Italian (it) and English (en). Compiled into totemd
# (firmware/screens, //go:embed) and decoded strictly at start: a key
# misspelt, a table or key written twice or a text without both languages
# stops the build's tests and the program, naming this file and the line.
#
# [screens.NAME]  one screen: its four rows in each language, as they show;
#   keys    the keys it answers to (0-9 A-D * #), "" or none for a screen
#           that only informs; every key a row hints at ("#=OK") is listed,
#           and a screen that takes input has * and D;
#   secret  true where a PIN or PUK is typed (only from the keypad);
#   typed   true where a keyboard types text (the operator's fields);
#   %s, %d  filled by the firmware in row order: keep them, in the same
#           order, in both languages.
# [texts]        the words the flows put on a screen or wrap into pages.
# [maint_texts]  the words the maintenance screens fill in.
# [rejections]   the CMS's refusals by code, as the citizen reads them.
#
# The tests (go test ./firmware/screens) check that every row fits 20
# columns once filled, shows on the LCD's character ROMs (no Ì: write Sì
# and sì), binds the keys it hints at, and that every CMS code has its text.
`

func TestGenTOML(t *testing.T) {
	if os.Getenv("GEN_TOML") == "" {
		t.Skip("GEN_TOML unset")
	}
	var b strings.Builder
	b.WriteString(genHeader)
	screenGroup := func(name string, m map[string]screen, banner []string) {
		doc, elems := genVar(t, genFiles, name)
		if banner == nil {
			banner = doc
		}
		if len(elems) != len(m) {
			t.Fatalf("%s: %d elements, %d in the map", name, len(elems), len(m))
		}
		b.WriteString("\n")
		genLines(&b, banner)
		for _, e := range elems {
			s := m[e.key]
			b.WriteString("\n")
			genLines(&b, e.lead)
			b.WriteString("[screens." + e.key + "]")
			if e.trail != "" {
				b.WriteString(" # " + e.trail)
			}
			b.WriteString("\n")
			if s.secret {
				b.WriteString("secret = true\n")
			}
			if s.typed {
				b.WriteString("typed = true\n")
			}
			if s.keys != "" {
				b.WriteString("keys = " + tq(s.keys) + "\n")
			}
			b.WriteString("it = " + genRows(s.rows[IT]) + "\n")
			b.WriteString("en = " + genRows(s.rows[EN]) + "\n")
		}
	}
	textGroup := func(name string, m map[string]text, banner []string) {
		doc, elems := genVar(t, genFiles, name)
		if banner == nil {
			banner = doc
		}
		b.WriteString("\n")
		genLines(&b, banner)
		for _, e := range elems {
			tx, ok := m[e.key]
			if !ok {
				t.Fatalf("%s: %s", name, e.key)
			}
			genLines(&b, e.lead)
			genText(&b, e.key, tx[IT], tx[EN], e.trail)
		}
	}
	// The screens as the Go maps held them before the merge: catalogue.go's
	// own, the self-service ones, assisted mode, maintenance.
	own := map[string]screen{}
	_, elems := genVar(t, genFiles, "screens")
	for _, e := range elems {
		own[e.key] = screens[e.key]
	}
	screenGroup("screens", own, []string{"========================================================================",
		"Screens", "========================================================================"})
	screenGroup("selfScreens", selfScreens, []string{"------------------------------------------------------------------------",
		"The self-service catalogue (issue 6): Sblocco PIN con PUK, Revoca,", "Dati errati, Modulistica, Guida, Riemissione.",
		"------------------------------------------------------------------------"})
	screenGroup("assistedScreens", assistedScreens, []string{"------------------------------------------------------------------------",
		"Assisted mode (firmware/assisted.go, activation.go): what the operator", "and the citizen at the counter see.",
		"------------------------------------------------------------------------"})
	screenGroup("maintScreens", maintScreens, []string{"------------------------------------------------------------------------",
		"Maintenance mode (firmware/maintenance.go): what a field technician sees", "at the panel. Nothing here shows a citizen's data.",
		"------------------------------------------------------------------------"})

	b.WriteString("\n# ========================================================================\n# Texts\n# ========================================================================\n\n[texts]\n")
	textGroup("texts", texts, []string{})
	textGroup("consentTexts", texts, nil)
	textGroup("selfTexts", texts, []string{"The self-service catalogue (issue 6)."})
	textGroup("assistedTexts", texts, []string{"Assisted mode: the operator's summary and text fields."})
	b.WriteString("\n[maint_texts]\n")
	textGroup("maintTexts", maintTexts, []string{"The words the maintenance screens fill in. Those whose key starts with", "\"m_two_\" wrap on two rows of 20 (a test checks); the others fit a row."})
	b.WriteString("\n[rejections]\n")
	textGroup("rejections", rejections, nil)
	b.WriteString("\n# What a code the catalogue does not know reads as (never the code itself).\n[reject_unknown]\n")
	b.WriteString("it = " + tq(rejectUnknown[IT]) + "\nen = " + tq(rejectUnknown[EN]) + "\n")
	if err := os.WriteFile("catalogue.toml", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
