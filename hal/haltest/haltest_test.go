package haltest_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
)

func TestDisplayConformance(t *testing.T) {
	for _, size := range [][2]int{{20, 4}, {16, 2}, {40, 1}} {
		d := &haltest.Display{Cols: size[0], Rows: size[1]}
		haltest.DisplayConformance(t, d, d.Screen)
	}
	var zero haltest.Display
	if c, r := zero.Size(); c != 20 || r != 4 {
		t.Errorf("zero Display Size() = %d, %d; want 20, 4", c, r)
	}
	haltest.DisplayConformance(t, &zero, zero.Screen)
}

func TestDisplayHistory(t *testing.T) {
	d := &haltest.Display{Cols: 4, Rows: 2}
	d.Show([]string{"ciao mondo", "è", "x"})
	d.Show(nil)
	want := [][]string{{"ciao", "è"}, {}}
	got := d.History()
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("History() = %q; want %q", got, want)
	}
	d.Err = hal.ErrNotResponding
	if err := d.Show([]string{"a"}); !errors.Is(err, hal.ErrNotResponding) {
		t.Errorf("Show with Err set = %v", err)
	}
	if len(d.History()) != 2 {
		t.Errorf("a failed Show was recorded")
	}
}

func TestKeypadConformance(t *testing.T) {
	k := new(haltest.Keypad)
	haltest.KeypadConformance(t, k, func(key hal.Key) { k.Press(key) })
	if n := k.Pending(); n != 0 {
		t.Errorf("Pending() = %d after conformance", n)
	}
}

func TestKeypadPressMany(t *testing.T) {
	var k haltest.Keypad
	k.Press('1', '2', hal.KeyOK)
	for _, want := range []hal.Key{'1', '2', hal.KeyOK} {
		got, err := k.Next(context.Background())
		if err != nil || got != want {
			t.Fatalf("Next = %q, %v; want %q", got, err, want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc"},
		{"àèìòù", 2, "àè"},
		{"€€€", 0, ""},
	} {
		if got := haltest.Cut(c.s, c.n); got != c.want {
			t.Errorf("Cut(%q, %d) = %q; want %q", c.s, c.n, got, c.want)
		}
	}
}
