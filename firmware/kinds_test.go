package firmware

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms/opkind"
	"github.com/aslcns/totem/hal"
)

// kindReceipts adds, to the golden receipts of receipt_test.go, the
// receipts of kinds that tests register (kind_fixture_test.go).
var kindReceipts = map[string]func(a *App) *hal.Doc{}

// kindProblems lists what the firmware lacks for the declared kinds:
// every kind with a flow needs a spec with a title and a flow, a menu key
// for each of its flows and a golden receipt under its title; a spec
// needs a declared kind with a flow.
func kindProblems(kinds []opkind.Kind, specs map[string]kindSpec, self, assisted []map[hal.Key]string, golden map[string]bool) []string {
	onMenu := func(menus []map[hal.Key]string, kind string) bool {
		for _, m := range menus {
			for _, k := range m {
				if k == kind {
					return true
				}
			}
		}
		return false
	}
	var ps []string
	declared := map[string]bool{}
	for _, k := range kinds {
		declared[k.Name] = k.Flow || k.Receipt
		s, ok := specs[k.Name]
		switch {
		case !k.Flow && !k.Receipt:
			continue
		case !ok:
			ps = append(ps, k.Name+": declared with a flow or a receipt, none registered (registerKind)")
			continue
		case s.title == "" || s.titleEN == "":
			ps = append(ps, k.Name+": no receipt title in Italian and English")
		case !golden[s.title]:
			ps = append(ps, fmt.Sprintf("%s: no golden receipt titled %q (receipt_test.go)", k.Name, s.title))
		}
		if k.Flow && s.self == nil && s.assisted == nil {
			ps = append(ps, k.Name+": no flow")
		}
		if !k.Flow && (s.self != nil || s.assisted != nil) {
			ps = append(ps, k.Name+": a flow registered, declared without one")
		}
		if s.self != nil && !onMenu(self, k.Name) {
			ps = append(ps, k.Name+": self-service flow on no menu key")
		}
		if s.assisted != nil && !onMenu(assisted, k.Name) {
			ps = append(ps, k.Name+": assisted flow on no menu key")
		}
	}
	for name := range specs {
		if !declared[name] {
			ps = append(ps, name+": registered in the firmware, not declared with a flow or a receipt in cms/opkind")
		}
	}
	for _, m := range append(append([]map[hal.Key]string{}, self...), assisted...) {
		for key, name := range m {
			if _, ok := specs[name]; !ok {
				ps = append(ps, fmt.Sprintf("menu key %c: kind %s has no flow", key, name))
			}
		}
	}
	return ps
}

// TestEveryFlowKindIsComplete: each operation kind cms/opkind declares
// with a flow has all its firmware pieces — a kind half added fails here,
// not at a counter with a receipt titled "Operazione x".
func TestEveryFlowKindIsComplete(t *testing.T) {
	golden := map[string]bool{}
	for _, d := range receipts() {
		golden[d.Title] = true
	}
	for _, p := range kindProblems(opkind.All(), kindSpecs, []map[hal.Key]string{selfMenu, otherMenu}, []map[hal.Key]string{opMenu}, golden) {
		t.Error(p)
	}
}

// The check itself finds each missing piece.
func TestKindProblemsFindsGaps(t *testing.T) {
	flow := func(*App, context.Context, hal.Card, hal.CardInfo) error { return nil }
	kinds := []opkind.Kind{{Name: "a", Flow: true}, {Name: "b", Flow: true}, {Name: "c", Flow: true}, {Name: "d", Flow: true}, {Name: "e"},
		{Name: "r", Receipt: true}, {Name: "s", Receipt: true}, {Name: "u", Receipt: true}, {Name: "v", Receipt: true}}
	specs := map[string]kindSpec{
		"a": {title: "A", titleEN: "A", self: flow}, // complete
		"b": {title: "", self: flow},                // no title
		"c": {title: "C", titleEN: "C"},             // no flow, no golden
		"d": {title: "D", titleEN: "D", self: flow}, // on no menu
		"x": {title: "X", titleEN: "X", self: flow}, // not declared
		"r": {title: "R", titleEN: "R"},             // a receipt, complete
		"s": {title: "S", titleEN: "S"},             // a receipt without its golden
		"u": {title: "U", titleEN: "U", self: flow}, // a receipt kind with a flow
		"e": {title: "E", titleEN: "E"},             // neither flow nor receipt declared
	}
	self := []map[hal.Key]string{{'1': "a", '2': "b", '9': "z"}}
	self[0]['8'] = "u"
	got := strings.Join(kindProblems(kinds, specs, self, nil, map[string]bool{"A": true, "D": true, "X": true, "R": true, "U": true}), "\n")
	for _, want := range []string{"b: no receipt title", `c: no golden receipt titled "C"`, "c: no flow",
		`s: no golden receipt titled "S"`, "u: a flow registered, declared without one", "v: declared with a flow or a receipt, none registered",
		"e: registered in the firmware, not declared",
		"d: self-service flow on no menu key", "x: registered in the firmware, not declared", "menu key 9: kind z has no flow"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "a:") || strings.Contains(got, "r:") {
		t.Errorf("a complete kind reported:\n%s", got)
	}
}
