package totem_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The size limits of production code (issue 15): a function longer than
// maxFuncLines is read in pieces, a type with more than maxMethods methods
// is doing several jobs.
const (
	maxFuncLines = 80
	maxMethods   = 40
)

// oversized lists the production functions over maxFuncLines lines and the
// types with more than maxMethods methods (value and pointer receivers,
// counted per package directory) in the Go files below root, leaving out
// tests and testdata.
func oversized(root string) ([]string, error) {
	fset := token.NewFileSet()
	methods := map[string]int{}
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			if recv := receiver(fd); recv != "" {
				methods[filepath.Dir(p)+"."+recv]++
				name = recv + "." + name
			}
			start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
			if n := end.Line - start.Line + 1; n > maxFuncLines {
				found = append(found, fmt.Sprintf("%s:%d: func %s is %d lines (at most %d)", p, start.Line, name, n, maxFuncLines))
			}
		}
		return nil
	})
	for typ, n := range methods {
		if n > maxMethods {
			found = append(found, fmt.Sprintf("%s: type has %d methods (at most %d)", typ, n, maxMethods))
		}
	}
	sort.Strings(found)
	return found, err
}

// receiver is the name of fd's receiver type, "" for a function.
func receiver(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch g := t.(type) {
	case *ast.IndexExpr:
		t = g.X
	case *ast.IndexListExpr:
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// TestSizes: no production function over 80 lines, no type with more than
// 40 methods.
func TestSizes(t *testing.T) {
	found, err := oversized(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Error(f)
	}
}

// TestSizesFinds: the check sees a function one line too long, a type with
// one method too many (pointer, value and generic receivers alike), lets a
// function of exactly the limit pass and passes over tests and testdata.
func TestSizesFinds(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("package x\n\ntype T[E any] struct{}\n\nfunc long() {\n")
	b.WriteString(strings.Repeat("\t_ = 0\n", maxFuncLines-1))
	b.WriteString("}\n\nfunc fits() {\n")
	b.WriteString(strings.Repeat("\t_ = 0\n", maxFuncLines-2))
	b.WriteString("}\n")
	for i := range maxMethods + 1 {
		fmt.Fprintf(&b, "func (%s) M%d() {}\n", [...]string{"*T[E]", "T[E]"}[i%2], i)
	}
	src := b.String()
	for name, src := range map[string]string{
		"x/x.go":          src,
		"x/x_test.go":     strings.Replace(src, "package x", "package x_test", 1),
		"x/testdata/y.go": src,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, err := oversized(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "x") + ".T: type has 41 methods (at most 40)",
		filepath.Join(dir, "x", "x.go") + ":5: func long is 81 lines (at most 80)",
	}
	if !slices.Equal(found, want) {
		t.Fatalf("found %q\nwant %q", found, want)
	}
}
