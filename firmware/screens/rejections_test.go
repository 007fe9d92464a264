package screens

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every refusal code cms declares (a const Code… = "…" in cms/*.go) has
// its text in both languages; an unknown code reads as the generic text,
// never as the code.
func TestRejectionsCoverCMS(t *testing.T) {
	files, err := filepath.Glob("../../cms/*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(nd ast.Node) bool {
			vs, ok := nd.(*ast.ValueSpec)
			if !ok || len(vs.Values) != len(vs.Names) {
				return true
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !strings.HasPrefix(name.Name, "Code") || !ok || lit.Kind != token.STRING {
					continue
				}
				code, _ := strconv.Unquote(lit.Value)
				n++
				tx, ok := rejections[code]
				if !ok {
					t.Errorf("cms.%s (%q) has no text in the catalogue", name.Name, code)
					continue
				}
				for l, s := range tx {
					if s == "" || strings.Contains(s, code) {
						t.Errorf("%s/%d: %q", code, l, s)
					}
				}
			}
			return true
		})
	}
	if n < 30 {
		t.Fatalf("found only %d codes in cms: the check is vacuous", n)
	}
	for _, l := range []Lang{IT, EN} {
		if got := l.Rejection("NO_SUCH_CODE"); got != rejectUnknown[l] || strings.Contains(got, "NO_SUCH") {
			t.Errorf("unknown code in %d reads %q", l, got)
		}
	}
	if got := EN.Rejection("PAYMENT_REUSED"); got != "This payment receipt has already been used for a reader." {
		t.Errorf("PAYMENT_REUSED in English: %q", got)
	}
}
