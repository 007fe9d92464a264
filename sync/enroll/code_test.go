package enroll

import (
	"strings"
	"testing"
)

func TestCodeFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 14 || c[4] != '-' || c[9] != '-' {
			t.Fatalf("code %q not grouped", c)
		}
		n, err := ParseCode(c)
		if err != nil || len(n) != CodeLen || Group(n) != c {
			t.Fatalf("ParseCode(%q) = %q, %v", c, n, err)
		}
		for _, r := range n {
			if !strings.ContainsRune(Alphabet, r) {
				t.Fatalf("code %q has %q", c, r)
			}
		}
		seen[c] = true
	}
	if len(seen) < 200 {
		t.Errorf("%d distinct codes of 200", len(seen))
	}
	if n, err := ParseCode(" k7qm-2xpa 9rtd "); err != nil || n != "K7QM2XPA9RTD" {
		t.Errorf("typed code: %q %v", n, err)
	}
	for in, reason := range map[string]string{
		"K7QM-2XPA-9RT0": ReasonAlphabet, "K7QM-2XPA-9RTI": ReasonAlphabet, "K7QM-2XPA-9RTÈ": ReasonAlphabet,
		"K7QM-2XPA": ReasonLength, "K7QM-2XPA-9RTDD": ReasonLength, strings.Repeat("A", 100): ReasonLength,
	} {
		if _, err := ParseCode(in); ReasonOf(err) != reason || strings.Contains(err.Error(), in) {
			t.Errorf("ParseCode(%q): %v, want %s, not quoting the input", in, err, reason)
		}
	}
}
