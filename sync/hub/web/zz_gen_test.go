package web

import (
	"os"
	"strings"
	"testing"
)

const genHeader = `# The ops console's texts (totemhub's web console), in Italian (it, the
# default) and English (en): one key, both languages. Compiled into
# totemhub (sync/hub/web, //go:embed) and decoded strictly at start: a key
# misspelt, a key written twice or a text without both languages stops the
# tests and the program, naming this file and the line. The templates name
# the keys (.L.key); a test checks each one they name is here.
`

func TestGenTOML(t *testing.T) {
	if os.Getenv("GEN_TOML") == "" {
		t.Skip("GEN_TOML unset")
	}
	var b strings.Builder
	b.WriteString(genHeader + "\n")
	_, elems := genVar(t, []string{"i18n.go"}, "catalogue")
	for _, e := range elems {
		genLines(&b, e.lead)
		v := catalogue[e.key]
		genText(&b, e.key, v[0], v[1], e.trail)
	}
	if err := os.WriteFile("i18n.toml", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
