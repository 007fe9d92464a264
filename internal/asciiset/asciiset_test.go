package asciiset

import "testing"

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want func(c byte) bool
	}{
		{"0-9a-f", func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }},
		{"A-Za-z0-9_-", func(c byte) bool {
			return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		}},
		{"-a", func(c byte) bool { return c == '-' || c == 'a' }},
		{"a-z0-9+.-", func(c byte) bool {
			return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
		}},
		{"\x00-\x7f", func(c byte) bool { return c < 0x80 }},
	} {
		s := Of(tt.spec)
		for c := 0; c < 256; c++ {
			if s.Has(byte(c)) != tt.want(byte(c)) {
				t.Errorf("%q: byte %#x: %v", tt.spec, c, s.Has(byte(c)))
			}
		}
	}
	for _, bad := range []string{"z-a", "é", "a-\xff"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Of(%q) did not panic", bad)
				}
			}()
			Of(bad)
		}()
	}
}

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		s        string
		min, max int
		want     bool
	}{
		{"", 0, 4, true},
		{"", 1, 4, false},
		{"0a9f", 1, 4, true},
		{"0a9f0", 1, 4, false},
		{"0A9f", 1, 4, false},
		{"0a\x009", 1, 4, false},
		{"0a9", 4, 4, false},
	} {
		if got := LowerHex.Valid(tt.s, tt.min, tt.max); got != tt.want {
			t.Errorf("Valid(%q, %d, %d) = %v", tt.s, tt.min, tt.max, got)
		}
	}
}
