package screens

import (
	"fmt"
	"strings"
	"testing"
)

// catalogue.toml decodes strictly as compiled in, and each way of getting
// it wrong is refused naming the file and, where there is one, the line.
func TestCatalogueFileStrict(t *testing.T) {
	c, err := load(catalogueFile, catalogueTOML)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.screens) < 150 || len(c.texts) < 100 || len(c.maintTexts) < 20 || len(c.rejections) < 40 || c.rejectUnknown[EN] == "" {
		t.Fatalf("catalogue.toml: %d screens, %d texts, %d maintenance texts, %d rejections",
			len(c.screens), len(c.texts), len(c.maintTexts), len(c.rejections))
	}
	src := string(catalogueTOML)
	// lineOf is the line of the first occurrence of s in the file.
	lineOf := func(s string) int {
		i := strings.Index(src, s)
		if i < 0 {
			t.Fatalf("%q is not in catalogue.toml", s)
		}
		return strings.Count(src[:i], "\n") + 1
	}
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"misspelt field", "[screens.menu]\nkeys =", "[screens.menu]\nkyes =",
			fmt.Sprintf("%s:%d: unknown key \"screens.menu.kyes\"", catalogueFile, lineOf("[screens.menu]\n")+1)},
		{"a language misspelt", "yes = { it = \"Sì\", en =", "yes = { it = \"Sì\", eng =",
			fmt.Sprintf("%s:%d: unknown key \"texts.yes.eng\"", catalogueFile, lineOf("yes = { it"))},
		{"a screen twice", "[screens.done]\n", "[screens.idle]\n",
			fmt.Sprintf("%s:%d: table [screens.idle] defined twice (first at line %d)", catalogueFile, lineOf("[screens.done]\n"), lineOf("[screens.idle]\n"))},
		{"a row lost", `it = ["Lettura tessera...", "Attendere, prego", "", ""]`, `it = ["Lettura tessera...", "Attendere, prego", ""]`,
			catalogueFile + ": [screens.reading]: 3 rows in it, 4 in en, want 4 in each"},
		{"keys not a string", "[screens.menu]\nkeys = \"0123456789#*D\"", "[screens.menu]\nkeys = 0",
			fmt.Sprintf("%s:%d: wrong type: integer, want string", catalogueFile, lineOf("[screens.menu]\n")+1)},
		{"a text without English", `no = { it = "No", en = "No" }`, `no = { it = "No" }`,
			catalogueFile + ": [texts] no: a text needs both it and en"},
		{"a maintenance word also a text", "m_connected = {", "yes = {",
			catalogueFile + ": yes is in both [texts] and [maint_texts]"},
		{"a syntax error", `guide.it = "Con`, `guide.it = Con`, fmt.Sprintf("%s:%d: ", catalogueFile, lineOf(`guide.it = "Con`))},
	} {
		if !strings.Contains(src, c.old) {
			t.Fatalf("%s: %q is not in catalogue.toml", c.name, c.old)
		}
		_, err := load(catalogueFile, []byte(strings.Replace(src, c.old, c.new, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

// Loading the catalogue is what totemd pays once at start (issue 15).
func BenchmarkLoadCatalogue(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := load(catalogueFile, catalogueTOML); err != nil {
			b.Fatal(err)
		}
	}
}
