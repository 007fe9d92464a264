package main

import "testing"

// --rate and --abort-after-failures take the number as the usage writes
// it (5/min, 20%) or bare; another unit is refused.
func TestJobFlagsTakeTheirUnit(t *testing.T) {
	for _, c := range []struct {
		suffix, in string
		want       int
		ok         bool
	}{
		{"/min", "5/min", 5, true},
		{"/min", "5", 5, true},
		{"/min", "5/h", 0, false},
		{"/min", "5%", 0, false},
		{"%", "20%", 20, true},
		{"%", " 20 ", 20, true},
		{"%", "venti", 0, false},
	} {
		v := suffixedInt{n: -1, suffix: c.suffix}
		err := v.Set(c.in)
		if (err == nil) != c.ok || (c.ok && v.n != c.want) {
			t.Errorf("%q (%s): %d, %v", c.in, c.suffix, v.n, err)
		}
	}
}
