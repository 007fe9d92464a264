package firmware_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/screens"
)

// Every screen and text the firmware and its flows put on the panel by
// name is in the catalogue, in Italian and English (issue 17's "Must
// hold"): the source is read for every literal name given to a call that
// shows a screen or looks a text up, and the names built from a code are
// checked for every code.
func TestEveryMessageInTheCatalogue(t *testing.T) {
	shows := map[string]bool{"Show": true, "show": true, "Ask": true, "choose": true, "notice": true, "key": true, "Key": true,
		"keyOr": true, "enter": true, "enterFrom": true, "tooShort": false, "Screen": true}
	files, _ := filepath.Glob("*.go")
	more, _ := filepath.Glob("flows/*.go")
	fset := token.NewFileSet()
	var nScreens, nTexts int
	for _, f := range append(files, more...) {
		if filepath.Ext(f) != ".go" || len(f) > 8 && f[len(f)-8:] == "_test.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			for _, a := range call.Args {
				lit, ok := a.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				s, _ := strconv.Unquote(lit.Value)
				switch {
				case shows[sel.Sel.Name]:
					nScreens++
					if !screens.Has(s) {
						t.Errorf("%s: screen %q is not in the catalogue", fset.Position(lit.Pos()), s)
					}
				case sel.Sel.Name == "Text" || sel.Sel.Name == "refuse":
					nTexts++
					checkText(t, fset.Position(lit.Pos()).String(), s)
				}
				break // the name is the first literal
			}
			return true
		})
	}
	if nScreens < 50 || nTexts < 20 {
		t.Fatalf("the scan found %d screens and %d texts: not the firmware's source?", nScreens, nTexts)
	}
	// Names built from a code.
	for _, st := range []cms.CardState{cms.CardIssued, cms.CardActive, cms.CardRevoked} {
		checkText(t, "state_", "state_"+string(st))
	}
	for _, d := range []string{cms.DocIdentityCard, cms.DocCIE, cms.DocLicence, cms.DocPassport} {
		checkText(t, "doc_", "doc_"+d)
	}
	for _, d := range []string{cms.DelegParental, cms.DelegTutor, cms.DelegCurator} {
		checkText(t, "deleg_", "deleg_"+d)
	}
	for _, p := range []cms.Policy{cms.Policy2016, cms.Policy2020} {
		for _, c := range p.Consents {
			for _, k := range []string{c.Code, "why_" + c.Code, "rcpt_" + c.Code} {
				checkText(t, "consent", k)
			}
		}
	}
}

func checkText(t *testing.T, where, key string) {
	t.Helper()
	if screens.IT.Text(key) == key || screens.EN.Text(key) == key || screens.IT.Text(key) == "" || screens.EN.Text(key) == "" {
		t.Errorf("%s: text %q is not in the catalogue in both languages", where, key)
	}
}
