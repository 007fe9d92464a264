package receipts

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms"
)

// receipts.toml decodes strictly as compiled in, has a text for every
// code of cms the layouts name, and each way of getting it wrong is
// refused naming the file and, where there is one, the line.
func TestReceiptTextsFile(t *testing.T) {
	l, err := load(textsFile, receiptsTOML)
	if err != nil {
		t.Fatal(err)
	}
	for table, c := range map[string]struct {
		m     map[string][2]string
		codes []string
	}{
		"reasons": {l.reasons, []string{cms.ReasonTheft, cms.ReasonLoss, cms.ReasonMalfunction,
			cms.ReprintForgotten, cms.ReprintLost, cms.ReprintBlocked, cms.ReprintNotReceived}},
		"delegations": {l.delegations, []string{cms.DelegParental, cms.DelegTutor, cms.DelegCurator}},
		"documents":   {l.documents, []string{cms.DocIdentityCard, cms.DocCIE, cms.DocLicence, cms.DocPassport}},
	} {
		for _, code := range c.codes {
			if _, ok := c.m[code]; !ok {
				t.Errorf("[%s] has no %s", table, code)
			}
		}
	}
	for _, s := range []cms.CardState{cms.CardIssued, cms.CardActive, cms.CardRevoked} {
		if _, ok := l.cardStates[s]; !ok {
			t.Errorf("[card_states] has no %s", s)
		}
	}
	if len(l.frame) < 10 || len(l.lines) < 40 {
		t.Errorf("%d frame words, %d lines", len(l.frame), len(l.lines))
	}

	src := string(receiptsTOML)
	lineOf := func(s string) int {
		i := strings.Index(src, s)
		if i < 0 {
			t.Fatalf("%q is not in receipts.toml", s)
		}
		return strings.Count(src[:i], "\n") + 1
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"a table misspelt", "\n[card_states]\n", "\n[card_state]\n",
			fmt.Sprintf("%s:%d: unknown key \"card_state\"", textsFile, lineOf("\n[card_states]\n")+1)},
		{"a language misspelt", `date = { it = "Data: ", en =`, `date = { it = "Data: ", em =`,
			fmt.Sprintf("%s:%d: unknown key \"frame.date.em\"", textsFile, lineOf(`date = { it`))},
		{"a key twice", `card = { it = "Tessera ", en = "Card " }`, `pin1 = { it = "Tessera ", en = "Card " }`,
			fmt.Sprintf("%s:%d: key \"pin1\" defined twice (first at line %d)", textsFile, lineOf(`card = { it = "Tessera "`), lineOf("pin1 = "))},
		{"a text without English", `keep = { it = "Conservare la ricevuta.", en = "Keep this receipt." }`, `keep = { it = "Conservare la ricevuta." }`,
			textsFile + ": [frame] keep: a text needs both it and en"},
		{"a wrong type", `tutore = { it = "tutore", en = "legal guardian" }`, `tutore = "tutore"`,
			fmt.Sprintf("%s:%d: wrong type: string, want table", textsFile, lineOf(`tutore = { it`))},
	} {
		if !strings.Contains(src, c.old) {
			t.Fatalf("%s: %q is not in receipts.toml", c.name, c.old)
		}
		_, err := load(textsFile, []byte(strings.Replace(src, c.old, c.new, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	// Without a table (its texts moved elsewhere, so the file still decodes).
	i := strings.Index(src, "\n[documents]\n")
	if _, err := load(textsFile, []byte(src[:i])); err == nil || err.Error() != textsFile+": no [documents]" {
		t.Errorf("receipts.toml without [documents]: %v", err)
	}
}

// Loading the receipts' words is what totemd pays once at start (issue 15).
func BenchmarkLoadReceiptTexts(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := load(textsFile, receiptsTOML); err != nil {
			b.Fatal(err)
		}
	}
}
