package screens

import (
	"strings"
	"testing"
)

// Every screen where digits or letters are typed keeps what is typed out
// of speech (the PIN, the PUK, CF, names, codes), in both languages, and
// spokenArgs names only screens of the catalogue.
func TestSpokenKeepsTypingSilent(t *testing.T) {
	for key := range spokenArgs {
		if !Has(key) {
			t.Errorf("spokenArgs: no screen %q", key)
		}
	}
	typing := 0
	for key, s := range screens {
		if !strings.Contains(s.keys, "0") {
			continue
		}
		for l := range s.rows {
			n := 0
			for _, r := range s.rows[l] {
				n += countVerbs(r)
			}
			if n == 0 {
				continue
			}
			typing++
			args := make([]any, n)
			for i := range args {
				args[i] = "97315824RSSMRA"
			}
			if key == "text" {
				args[0] = "Cognome"
			}
			got := Spoken(Lang(l), key, args...)
			if strings.Contains(got, "9731") || strings.Contains(got, "RSSMRA") {
				t.Errorf("%s/%d: what is typed is spoken: %q", key, l, got)
			}
			if got == "" {
				t.Errorf("%s/%d: says nothing", key, l)
			}
		}
	}
	if typing < 10 {
		t.Fatalf("only %d typing screens checked: the check is vacuous", typing)
	}
	if got := Spoken(IT, "pin_wrong", 2); got != "PIN errato. Restano 2 tentativi cancelletto: Riprova D: Esci" {
		t.Errorf("pin_wrong spoken as %q", got)
	}
	if got := Spoken(EN, "text", "Delegate's CF", "RSSMRA80A01H501U"); strings.Contains(got, "RSSMRA") || !strings.Contains(got, "Delegate's CF") {
		t.Errorf("text spoken as %q", got)
	}
}
