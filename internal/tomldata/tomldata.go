// Package tomldata decodes TOML strictly, naming the file and the line of
// every error: the configuration files (config) and the data files a
// package compiles in with //go:embed — the texts the citizen, the
// operator and the technician read, kept beside the code that shows them
// so that a translator edits one file. A key the Go side has no field for
// is an error, and so are a key or a table defined twice and a value of
// the wrong type.
package tomldata

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Decode decodes data, read from the file name, into v strictly. Every
// error starts with name and, where go-toml knows it, the line:
//
//	name:12: unknown key "broker.ulr"
//	name:3: wrong type: integer, want string
//	name:4: key "level" defined twice (first at line 2)
//
// (one error a line for several unknown keys).
func Decode(name string, data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if dup := Duplicate(name, data); dup != nil {
			return dup
		}
		return decodeError(name, err)
	}
	return nil
}

// Duplicate finds the first key or table defined twice in a TOML document
// and returns "name:line: key "a.b" defined twice (first at line N)", or
// nil. go-toml reports a duplicate without its position; its parser gives
// the positions. Keys are followed as TOML scopes them: under the last
// [table] or [[array table]] (each [[x]] opens a new element), dotted keys
// in full.
func Duplicate(name string, b []byte) error {
	var p unstable.Parser
	p.Reset(b)
	seen := make(map[string]int) // key path → line first defined
	tables := make(map[string]int)
	var scope []string
	elems := 0 // array-table elements opened so far, to keep their keys apart
	keyOf := func(n *unstable.Node) ([]string, int) {
		var k []string
		line := 0
		it := n.Key()
		for it.Next() {
			kn := it.Node()
			if line == 0 {
				line = p.Shape(kn.Raw).Start.Line
			}
			k = append(k, string(kn.Data))
		}
		return k, line
	}
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			k, line := keyOf(n)
			tname := strings.Join(k, ".")
			if n.Kind == unstable.ArrayTable {
				elems++
				scope = append(k, fmt.Sprintf("[%d]", elems))
				continue
			}
			if first, ok := tables[tname]; ok {
				return fmt.Errorf("%s:%d: table [%s] defined twice (first at line %d)", name, line, tname, first)
			}
			tables[tname] = line
			scope = k
		case unstable.KeyValue:
			k, line := keyOf(n)
			full := strings.Join(append(append([]string(nil), scope...), k...), ".")
			if first, ok := seen[full]; ok {
				return fmt.Errorf("%s:%d: key %q defined twice (first at line %d)", name, line, strings.Join(k, "."), first)
			}
			seen[full] = line
		}
	}
	return nil
}

// decodeError rewrites a go-toml error as "name:line: message".
func decodeError(name string, err error) error {
	var missing *toml.StrictMissingError
	if errors.As(err, &missing) {
		errs := make([]error, len(missing.Errors))
		for i, e := range missing.Errors {
			line, _ := e.Position()
			errs[i] = fmt.Errorf("%s:%d: unknown key %q", name, line, strings.Join(e.Key(), "."))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeErrRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("wrong type: %s, want %s", m[1], tomlType(m[2]))
		}
		return fmt.Errorf("%s:%d: %s", name, line, msg)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// typeErrRE matches go-toml's type errors, which name Go types.
var typeErrRE = regexp.MustCompile(`^cannot decode TOML (\w+) into .* of type (\S+)$`)

// tomlType names the TOML type wanted for a Go type.
func tomlType(goType string) string {
	switch goType {
	case "string", "bool":
		return goType
	case "int":
		return "integer"
	case "float64":
		return "float"
	case "[]string":
		return "array of strings"
	}
	return "table"
}

// Text is a text in the two catalogue languages, written
// { it = "…", en = "…" } (or as the dotted keys name.it and name.en).
type Text struct {
	IT string `toml:"it"`
	EN string `toml:"en"`
}

// Pairs turns the texts of table (in the file name; "" for the file's top
// level) into pairs indexed by language, Italian first: the shape the
// catalogues look texts up in. A text missing either language is an
// error.
func Pairs[K ~string, P ~[2]string](name, table string, m map[string]Text) (map[K]P, error) {
	out := make(map[K]P, len(m))
	for k, t := range m {
		if t.IT == "" || t.EN == "" {
			if table != "" {
				k = "[" + table + "] " + k
			}
			return nil, fmt.Errorf("%s: %s: a text needs both it and en", name, k)
		}
		out[K(k)] = P{t.IT, t.EN}
	}
	return out, nil
}

// Tables converts the tables of texts of one file into pairs in a row,
// keeping the first error: a loader calls TablePairs for each table and
// checks Err once.
type Tables struct {
	File string // the file's name, for the errors
	Err  error
}

// TablePairs is Pairs of table in t's file, refusing a table with no text
// ("file: no [table]"); nil once t.Err is set.
func TablePairs[K ~string, P ~[2]string](t *Tables, table string, m map[string]Text) map[K]P {
	if t.Err != nil {
		return nil
	}
	if len(m) == 0 {
		what := "text"
		if table != "" {
			what = "[" + table + "]"
		}
		t.Err = fmt.Errorf("%s: no %s", t.File, what)
		return nil
	}
	out, err := Pairs[K, P](t.File, table, m)
	t.Err = err
	return out
}

// Must returns v, or panics with err when there is one: for the data
// files compiled in, where a malformed one is a build that must not start
// (and the package's test that loads it fails first).
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
