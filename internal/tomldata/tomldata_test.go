package tomldata

import (
	"strings"
	"testing"
)

type screen struct {
	Keys string   `toml:"keys"`
	IT   []string `toml:"it"`
	EN   []string `toml:"en"`
}

type file struct {
	Texts   map[string]Text   `toml:"texts"`
	Screens map[string]screen `toml:"screens"`
}

// A data file decodes strictly, and every way of getting it wrong is an
// error naming the file and the line.
func TestDecodeStrict(t *testing.T) {
	var f file
	ok := "[texts]\na = { it = \"sì\", en = \"yes\" }\nb.it = \"uno\"\nb.en = \"one\"\n\n[screens.x]\nkeys = \"#*D\"\nit = [\"a\", \"\"]\nen = [\"b\", \"\"]\n"
	if err := Decode("f.toml", []byte(ok), &f); err != nil {
		t.Fatal(err)
	}
	if f.Texts["b"] != (Text{"uno", "one"}) || f.Screens["x"].Keys != "#*D" || len(f.Screens["x"].EN) != 2 {
		t.Fatalf("decoded %+v", f)
	}
	for doc, want := range map[string]string{
		"[screens.x]\nkeys = \"1\"\nti = [\"a\"]\n":                `f.toml:3: unknown key "screens.x.ti"`,
		"[texts]\na = { it = \"x\", en = \"y\", de = \"z\" }\n":    `f.toml:2: unknown key "texts.a.de"`,
		"[texts]\na.it = \"x\"\na.en = \"y\"\n\na.it = \"z\"\n":    `f.toml:5: key "a.it" defined twice (first at line 2)`,
		"[screens.x]\nkeys = \"1\"\n\n[screens.x]\nkeys = \"2\"\n": `f.toml:4: table [screens.x] defined twice (first at line 1)`,
		"[screens.x]\n\nkeys = 1\n":                                `f.toml:3: wrong type: integer, want string`,
		"[screens.x]\nit = \"row\"\n":                              `f.toml:2: wrong type: string, want array of strings`,
		"[screens.x]\nkeys = \"1\n":                                `f.toml:2: `,
		"texts = 3\n":                                              `f.toml:1: wrong type: integer, want table`,
	} {
		var f file
		if err := Decode("f.toml", []byte(doc), &f); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", doc, err, want)
		}
	}
}

func TestPairs(t *testing.T) {
	type pair [2]string
	got, err := Pairs[string, pair]("f.toml", "texts", map[string]Text{"a": {"sì", "yes"}})
	if err != nil || got["a"] != (pair{"sì", "yes"}) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := Pairs[string, pair]("f.toml", "texts", map[string]Text{"a": {IT: "sì"}}); err == nil ||
		err.Error() != "f.toml: [texts] a: a text needs both it and en" {
		t.Fatalf("a text without English: %v", err)
	}
}

func TestMust(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(error).Error(), "f.toml:1") {
			t.Fatalf("recovered %v", r)
		}
	}()
	var f file
	Must(0, Decode("f.toml", []byte("x = 1\n"), &f))
}

// TablePairs keeps the first error of a row of tables, and refuses an
// empty one.
func TestTablePairs(t *testing.T) {
	type pair [2]string
	tb := &Tables{File: "f.toml"}
	a := TablePairs[string, pair](tb, "a", map[string]Text{"x": {"sì", "yes"}})
	b := TablePairs[string, pair](tb, "b", nil)
	c := TablePairs[string, pair](tb, "c", map[string]Text{"x": {IT: "sì"}})
	if a["x"] != (pair{"sì", "yes"}) || b != nil || c != nil || tb.Err == nil || tb.Err.Error() != "f.toml: no [b]" {
		t.Fatalf("%v %v %v %v", a, b, c, tb.Err)
	}
	top := &Tables{File: "f.toml"}
	if TablePairs[string, pair](top, "", nil); top.Err == nil || top.Err.Error() != "f.toml: no text" {
		t.Fatalf("%v", top.Err)
	}
}
