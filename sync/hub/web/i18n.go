package web

import (
	_ "embed"

	"github.com/aslcns/totem/internal/tomldata"
)

// The console's texts are data: i18n.toml, beside this file, compiled in
// and decoded once at start; a malformed file panics at init naming its
// line, and the package's tests load it first.

//go:embed i18n.toml
var i18nTOML []byte

const i18nFile = "sync/hub/web/i18n.toml"

// loadCatalogue decodes the console's texts file name strictly, every
// text in both languages.
func loadCatalogue(name string, b []byte) (map[string][2]string, error) {
	var d map[string]tomldata.Text
	if err := tomldata.Decode(name, b, &d); err != nil {
		return nil, err
	}
	t := &tomldata.Tables{File: name}
	c := tomldata.TablePairs[string, [2]string](t, "", d)
	return c, t.Err
}

// catalogue is the console's texts, in Italian (the default) and English:
// one key, both languages (TestCatalogue checks no key is missing in
// either).
var catalogue = tomldata.Must(loadCatalogue(i18nFile, i18nTOML))

// langs are the console's languages, by their index in catalogue.
var langs = map[string]int{"it": 0, "en": 1}

// texts returns the catalogue in lang (Italian for any other).
func texts(lang string) map[string]string {
	i := langs[lang]
	out := make(map[string]string, len(catalogue))
	for k, v := range catalogue {
		out[k] = v[i]
	}
	return out
}

// textsByLang is built once: a page is rendered without a map per request.
var textsByLang = map[string]map[string]string{"it": texts("it"), "en": texts("en")}
