// Package asciiset checks the identifiers that come from outside (a
// totem's id, a hub's name, a hex digest, a Debian package name): a
// length bound, and every byte in a small set of ASCII characters. Such a
// check comes before a name is used in a topic, a file name or a query.
package asciiset

// Set is a set of ASCII bytes. It is built once (Of) and read by any
// goroutine.
type Set struct{ in [256]bool }

// LowerHex is the lowercase hexadecimal digits.
var LowerHex = Of("0-9a-f")

// Of returns the set of the bytes spec lists, "a-z" standing for the range
// from a to z; a '-' first or last stands for itself, as in a regular
// expression's class. A byte outside ASCII or a reversed range panics: the
// specs are constants.
func Of(spec string) *Set {
	var s Set
	for i := 0; i < len(spec); i++ {
		lo, hi := spec[i], spec[i]
		if i+2 < len(spec) && spec[i+1] == '-' {
			hi = spec[i+2]
			i += 2
		}
		if hi >= 0x80 || lo > hi {
			panic("asciiset: bad spec " + spec)
		}
		for c := int(lo); c <= int(hi); c++ {
			s.in[c] = true
		}
	}
	return &s
}

// Has reports whether c is in the set.
func (s *Set) Has(c byte) bool { return s.in[c] }

// Valid reports whether str has min to max bytes, every one in the set.
func (s *Set) Valid(str string, min, max int) bool {
	if len(str) < min || len(str) > max {
		return false
	}
	for i := 0; i < len(str); i++ {
		if !s.in[str[i]] {
			return false
		}
	}
	return true
}
