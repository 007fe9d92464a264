package hal

import (
	"strings"
	"unicode/utf8"
)

// How the text of a Doc is laid out, the same on every printer and
// simulator: lines are broken at spaces to the paper's columns (a word
// longer than a line is cut), a newline starts a new line, and each line
// is then aligned.

// Wrap breaks s into lines at most width runes long, at spaces when it can.
func Wrap(s string, width int) []string {
	if width <= 0 {
		return []string{s}
	}
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			for utf8.RuneCountInString(w) > width {
				if line != "" {
					lines = append(lines, line)
					line = ""
				}
				r := []rune(w)
				lines = append(lines, string(r[:width]))
				w = string(r[width:])
			}
			switch {
			case line == "":
				line = w
			case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
				line += " " + w
			default:
				lines = append(lines, line)
				line = w
			}
		}
		lines = append(lines, line)
	}
	return lines
}

// Pad puts s in a line width runes wide as a aligns it: spaces before it
// (none after). A line as wide as width or wider is returned as it is.
func (a Align) Pad(s string, width int) string {
	n := utf8.RuneCountInString(s)
	if n >= width || n == 0 {
		return s
	}
	switch a {
	case Center:
		return strings.Repeat(" ", (width-n)/2) + s
	case Right:
		return strings.Repeat(" ", width-n) + s
	}
	return s
}
