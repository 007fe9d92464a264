package web

import (
	"fmt"
	"strings"
	"testing"
)

// i18n.toml decodes strictly as compiled in, and each way of getting it
// wrong is refused naming the file and, where there is one, the line.
func TestI18nFileStrict(t *testing.T) {
	c, err := loadCatalogue(i18nFile, i18nTOML)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) < 150 || c["title"][1] != "Totem — ops console" {
		t.Fatalf("i18n.toml: %d texts, title %q", len(c), c["title"])
	}
	src := string(i18nTOML)
	lineOf := func(s string) int {
		i := strings.Index(src, s)
		if i < 0 {
			t.Fatalf("%q is not in i18n.toml", s)
		}
		return strings.Count(src[:i], "\n") + 1
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"a language misspelt", `logout = { it = "Esci", en =`, `logout = { it = "Esci", eng =`,
			fmt.Sprintf("%s:%d: unknown key \"logout.eng\"", i18nFile, lineOf("logout = "))},
		{"a key twice", `login = { it = "Accesso"`, `logout = { it = "Accesso"`,
			fmt.Sprintf("%s:%d: key \"logout\" defined twice (first at line %d)", i18nFile, lineOf(`login = { it = "Accesso"`), lineOf("logout = "))},
		{"a text without English", `user = { it = "Utente", en = "User" }`, `user = { it = "Utente" }`,
			i18nFile + ": user: a text needs both it and en"},
		{"a text not a table", `user = { it = "Utente", en = "User" }`, `user = "Utente"`,
			fmt.Sprintf("%s:%d: wrong type: string, want table", i18nFile, lineOf(`user = { it`))},
		{"nothing", src, "# emptied\n", i18nFile + ": no text"},
	} {
		if !strings.Contains(src, c.old) {
			t.Fatalf("%s: %q is not in i18n.toml", c.name, c.old)
		}
		_, err := loadCatalogue(i18nFile, []byte(strings.Replace(src, c.old, c.new, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

// Loading the console's texts is what totemhub pays once at start (issue 15).
func BenchmarkLoadCatalogue(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := loadCatalogue(i18nFile, i18nTOML); err != nil {
			b.Fatal(err)
		}
	}
}
