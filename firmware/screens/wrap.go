package screens

// The texts longer than a row (the maintenance words, refusals, the
// Guida) are wrapped to the display's width.

// Wrap cuts s into rows of at most width runes at spaces (a word longer
// than a row is cut), for the texts a screen shows on several rows.
func Wrap(s string, width int) []string {
	var rows []string
	var cur []rune
	for _, w := range splitWords(s) {
		r := []rune(w)
		switch {
		case len(cur) == 0:
			cur = r
		case len(cur)+1+len(r) <= width:
			cur = append(append(cur, ' '), r...)
		default:
			rows = append(rows, string(cur))
			cur = r
		}
		for len(cur) > width {
			rows = append(rows, string(cur[:width]))
			cur = cur[width:]
		}
	}
	if len(cur) > 0 {
		rows = append(rows, string(cur))
	}
	return rows
}

func splitWords(s string) []string {
	var out []string
	start := -1
	for i, c := range s {
		if c == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}
