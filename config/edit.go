package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/aslcns/totem/internal/atomicfile"
)

// Setting is one key = value of a remote configuration change: Key is the
// dotted TOML key ("log.level", "sync.telemetry_interval"), Value a TOML
// value ("\"debug\"", "30", "true") or a bare word taken as a string
// ("debug", "45s").
type Setting struct{ Key, Value string }

// ParseSetting parses "key=value".
func ParseSetting(s string) (Setting, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return Setting{}, fmt.Errorf("config: %q: want key=value", s)
	}
	if strings.ContainsAny(v, "\r\n") {
		return Setting{}, fmt.Errorf("config: %s: a value on one line", k)
	}
	return Setting{Key: k, Value: strings.TrimSpace(v)}, nil
}

// value returns the TOML literal of a setting's value.
func (s Setting) value() string {
	var m map[string]any
	if toml.Unmarshal([]byte("x = "+s.Value), &m) == nil {
		return s.Value
	}
	b, _ := toml.Marshal(map[string]string{"x": s.Value})
	return strings.TrimSpace(strings.TrimPrefix(string(b), "x = "))
}

// Edit returns the TOML document b with each setting applied: a key
// already set is rewritten on its line (comments elsewhere kept), a
// missing one added under its table (the table added at the end when
// missing). Keys inside arrays of tables cannot be set this way.
func Edit(b []byte, sets []Setting) ([]byte, error) {
	for _, s := range sets {
		var err error
		if b, err = edit(b, s); err != nil {
			return nil, err
		}
		// A value written over several lines (an array) is rewritten on
		// its first line only: say so rather than hand on a broken file.
		var m map[string]any
		if err := toml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("config: setting %s here would break the file (a value over several lines?): edit the file", s.Key)
		}
	}
	return b, nil
}

func edit(b []byte, s Setting) ([]byte, error) {
	path := strings.Split(s.Key, ".")
	for _, p := range path {
		if p == "" || strings.ContainsAny(p, " \t\"'[]=#") {
			return nil, fmt.Errorf("config: key %q: want a dotted key of bare names", s.Key)
		}
	}
	if strings.ContainsAny(s.Value, "\r\n") {
		// One key per setting: a line break would smuggle in others.
		return nil, fmt.Errorf("config: %s: a value on one line", s.Key)
	}
	table, leaf := strings.Join(path[:len(path)-1], "."), path[len(path)-1]
	var p unstable.Parser
	p.Reset(b)
	var scope []string
	inArray := false
	headerEnd := -1      // the end of [table]'s header line
	firstTable := len(b) // where the first table header starts
	keyOf := func(n *unstable.Node) ([]string, int, int) {
		var k []string
		start, end := -1, 0
		it := n.Key()
		for it.Next() {
			kn := it.Node()
			sh := p.Shape(kn.Raw)
			if start < 0 {
				start = sh.Start.Offset
			}
			end = sh.End.Offset
			k = append(k, string(kn.Data))
		}
		return k, start, end
	}
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			k, start, end := keyOf(n)
			firstTable = min(firstTable, lineStart(b, start))
			scope, inArray = k, n.Kind == unstable.ArrayTable
			if !inArray && strings.Join(k, ".") == table {
				headerEnd = lineEnd(b, end)
			}
		case unstable.KeyValue:
			k, start, end := keyOf(n)
			full := append(slices.Clone(scope), k...)
			if strings.Join(full, ".") != s.Key {
				continue
			}
			if inArray {
				return nil, fmt.Errorf("config: key %q is inside an array of tables: edit the file", s.Key)
			}
			ls, le := lineStart(b, start), lineEnd(b, end)
			line := string(b[ls:start]) + string(b[start:end]) + " = " + s.value()
			return splice(b, ls, le, line), nil
		}
	}
	if err := p.Error(); err != nil {
		return nil, fmt.Errorf("config: the file does not parse: %w", err)
	}
	kv := leaf + " = " + s.value()
	switch {
	case table == "":
		return splice(b, firstTable, firstTable, kv+"\n"), nil
	case headerEnd >= 0:
		return splice(b, headerEnd, headerEnd, "\n"+kv), nil
	}
	out := bytes.TrimRight(b, "\n")
	return append(out, []byte("\n\n["+table+"]\n"+kv+"\n")...), nil
}

func lineStart(b []byte, off int) int { return bytes.LastIndexByte(b[:off], '\n') + 1 }

func lineEnd(b []byte, off int) int {
	if i := bytes.IndexByte(b[off:], '\n'); i >= 0 {
		return off + i
	}
	return len(b)
}

func splice(b []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(b)+len(s))
	out = append(out, b[:from]...)
	out = append(out, s...)
	return append(out, b[to:]...)
}

// LoadTotemdBytes loads totemd's configuration from b as Load would from
// the file at path (errors name path and the line in b).
func LoadTotemdBytes(path string, b []byte) (*Totemd, error) {
	c := DefaultTotemd()
	if err := loadBytes(path, b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// WriteFile writes b to path atomically (a temporary file in the same
// directory, synced, renamed over path, the directory synced) with the
// mode path has (0644 when it does not exist).
func WriteFile(path string, b []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return writeAtomic(path, b, mode)
}

// writeAtomic writes b to path with mode the way every file of ours is
// written (internal/atomicfile: a temporary file in the same directory,
// synced, renamed over path, the directory synced).
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := atomicfile.Write(path, b, mode, "."+filepath.Base(path)+".tmp*"); err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return nil
}

// Flatten returns v (a configuration struct) as dotted key → TOML value,
// the keys whose name says they hold a secret (password, secret, token,
// private key, key_file) replaced by Redacted.
func Flatten(v any) (map[string]string, error) {
	return flatten(v, func(k string, v any) string {
		if secretKey(k) {
			return Redacted
		}
		vb, _ := toml.Marshal(map[string]any{"x": v})
		return strings.TrimSpace(strings.TrimPrefix(string(vb), "x = "))
	})
}

// flatten returns v (a configuration struct) as dotted key → value, each
// value (neither a table nor under one) written by leaf, which gets its
// own name and value.
func flatten(v any, leaf func(name string, v any) string) (map[string]string, error) {
	b, err := toml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	out := make(map[string]string)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = leaf(k, v)
		}
	}
	walk("", m)
	return out, nil
}

// Redacted stands for a secret's value in Flatten.
const Redacted = "<redacted>"

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "secret", "token", "private", "key_file"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Changed returns the dotted keys whose values differ between a and b
// (configuration structs of one type), sorted.
func Changed(a, b any) []string {
	fa, err1 := flattenAll(a)
	fb, err2 := flattenAll(b)
	if err := errors.Join(err1, err2); err != nil {
		return nil
	}
	var out []string
	for k, v := range fa {
		if fb[k] != v {
			out = append(out, k)
		}
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// flattenAll is Flatten without redaction, and with arrays of tables
// compared whole.
func flattenAll(v any) (map[string]string, error) {
	return flatten(v, func(_ string, v any) string {
		if reflect.TypeOf(v) == nil {
			return ""
		}
		return fmt.Sprint(v)
	})
}
