package web

// Throwaway: writes the TOML data file from the Go literals (issue 15).

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

type genElem struct {
	key   string // unquoted literal, or the selector's source (cms.ReasonTheft)
	lead  []string
	trail string
}

func genComment(c *ast.CommentGroup) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(c.Text(), "\n"), "\n") {
		out = append(out, l)
	}
	return out
}

// genVar returns the doc comment of var name and its map literal's elements in order.
func genVar(t *testing.T, files []string, name string) (doc []string, elems []genElem) {
	t.Helper()
	fset := token.NewFileSet()
	for _, fn := range files {
		f, err := parser.ParseFile(fset, fn, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, sp := range g.Specs {
				vs := sp.(*ast.ValueSpec)
				if len(vs.Names) != 1 || vs.Names[0].Name != name || len(vs.Values) != 1 {
					continue
				}
				if g.Doc != nil {
					doc = genComment(g.Doc)
				} else if vs.Doc != nil {
					doc = genComment(vs.Doc)
				}
				cl := vs.Values[0].(*ast.CompositeLit)
				prevEnd := cl.Lbrace
				for _, e := range cl.Elts {
					kv := e.(*ast.KeyValueExpr)
					var el genElem
					switch k := kv.Key.(type) {
					case *ast.BasicLit:
						el.key, _ = strconv.Unquote(k.Value)
					case *ast.SelectorExpr:
						el.key = k.X.(*ast.Ident).Name + "." + k.Sel.Name
					default:
						t.Fatalf("key %T", k)
					}
					for _, c := range f.Comments {
						if c.Pos() > prevEnd && c.End() < kv.Pos() {
							if fset.Position(c.Pos()).Line == fset.Position(prevEnd).Line && len(elems) > 0 {
								elems[len(elems)-1].trail = strings.TrimSpace(c.Text())
								continue
							}
							el.lead = append(el.lead, genComment(c)...)
						}
					}
					prevEnd = kv.End()
					elems = append(elems, el)
				}
				// a trailing comment after the last element
				for _, c := range f.Comments {
					if c.Pos() > prevEnd && c.End() < cl.Rbrace && fset.Position(c.Pos()).Line == fset.Position(prevEnd).Line {
						elems[len(elems)-1].trail = strings.TrimSpace(c.Text())
					}
				}
				return doc, elems
			}
		}
	}
	t.Fatalf("no var %s", name)
	return nil, nil
}

func tq(s string) string { return strconv.Quote(s) }

func genLines(b *strings.Builder, lines []string) {
	for _, l := range lines {
		if l == "" {
			b.WriteString("#\n")
			continue
		}
		b.WriteString("# " + l + "\n")
	}
}

// genText writes key = { it = …, en = … }, or as dotted keys when long.
func genText(b *strings.Builder, key string, it, en string, trail string) {
	if trail != "" {
		trail = " # " + trail
	}
	line := key + " = { it = " + tq(it) + ", en = " + tq(en) + " }"
	if len(line) <= 110 {
		b.WriteString(line + trail + "\n")
		return
	}
	b.WriteString(key + ".it = " + tq(it) + trail + "\n")
	b.WriteString(key + ".en = " + tq(en) + "\n")
}

func genRows(rows []string) string {
	q := make([]string, len(rows))
	for i, r := range rows {
		q[i] = tq(r)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
