package hal

import (
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  []string
	}{
		{"Consenso alla consultazione", 20, []string{"Consenso alla", "consultazione"}},
		{"àèéìòù àèéìòù àèéìòù", 13, []string{"àèéìòù àèéìòù", "àèéìòù"}},
		{"ABCDEFGHIJKL", 5, []string{"ABCDE", "FGHIJ", "KL"}},
		{"aaa bbb cccccccccc\nd", 6, []string{"aaa", "bbb", "cccccc", "cccc", "d"}},
		{"", 5, []string{""}},
	}
	for _, tt := range tests {
		got := Wrap(tt.in, tt.width)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

func TestPad(t *testing.T) {
	if got := Center.Pad("abc", 9); got != "   abc" {
		t.Errorf("Center = %q", got)
	}
	if got := Right.Pad("è", 4); got != "   è" {
		t.Errorf("Right counts runes: %q", got)
	}
	if got := Left.Pad("abc", 9); got != "abc" {
		t.Errorf("Left = %q", got)
	}
	if got := Center.Pad("too long", 3); got != "too long" {
		t.Errorf("overflow = %q", got)
	}
}
