package screens

import (
	_ "embed"
	"fmt"

	"github.com/aslcns/totem/internal/tomldata"
)

// The catalogue is data: catalogue.toml, beside this file, holds every
// screen and text in Italian and English, compiled in and decoded once at
// start. A malformed file panics at init naming its line; the package's
// tests load it first.

//go:embed catalogue.toml
var catalogueTOML []byte

const catalogueFile = "firmware/screens/catalogue.toml"

// screenData is a screen as catalogue.toml writes it.
type screenData struct {
	Keys   string   `toml:"keys"`
	Typed  bool     `toml:"typed"`
	Secret bool     `toml:"secret"`
	IT     []string `toml:"it"`
	EN     []string `toml:"en"`
}

// catalogueData is catalogue.toml.
type catalogueData struct {
	Screens       map[string]screenData    `toml:"screens"`
	Texts         map[string]tomldata.Text `toml:"texts"`
	MaintTexts    map[string]tomldata.Text `toml:"maint_texts"`
	Rejections    map[string]tomldata.Text `toml:"rejections"`
	RejectUnknown tomldata.Text            `toml:"reject_unknown"`
}

// catalogue is the file decoded into the shapes the lookups use. The
// maintenance words are in texts too (Text finds them), and apart for
// their own checks.
type catalogue struct {
	screens                       map[string]screen
	texts, maintTexts, rejections map[string]text
	rejectUnknown                 text
}

// displayRows is how many rows every screen has in each language: the
// display's.
const displayRows = 4

// load decodes the catalogue file name: strictly, every screen with its
// four rows in both languages, every text in both, no text twice.
func load(name string, b []byte) (*catalogue, error) {
	var d catalogueData
	if err := tomldata.Decode(name, b, &d); err != nil {
		return nil, err
	}
	if len(d.Screens) == 0 {
		return nil, fmt.Errorf("%s: no [screens]", name)
	}
	t := &tomldata.Tables{File: name}
	c := &catalogue{
		screens:    make(map[string]screen, len(d.Screens)),
		texts:      tomldata.TablePairs[string, text](t, "texts", d.Texts),
		maintTexts: tomldata.TablePairs[string, text](t, "maint_texts", d.MaintTexts),
		rejections: tomldata.TablePairs[string, text](t, "rejections", d.Rejections),
		rejectUnknown: tomldata.TablePairs[string, text](t, "",
			map[string]tomldata.Text{"reject_unknown": d.RejectUnknown})["reject_unknown"],
	}
	if t.Err != nil {
		return nil, t.Err
	}
	for k, s := range d.Screens {
		if len(s.IT) != displayRows || len(s.EN) != displayRows {
			return nil, fmt.Errorf("%s: [screens.%s]: %d rows in it, %d in en, want %d in each", name, k, len(s.IT), len(s.EN), displayRows)
		}
		c.screens[k] = screen{rows: [2][]string{s.IT, s.EN}, keys: s.Keys, typed: s.Typed, secret: s.Secret}
	}
	for k, t := range c.maintTexts {
		if _, dup := c.texts[k]; dup {
			return nil, fmt.Errorf("%s: %s is in both [texts] and [maint_texts]", name, k)
		}
		c.texts[k] = t
	}
	return c, nil
}

// The tables the lookups read, decoded from catalogue.toml at init.
var (
	screens       map[string]screen
	texts         map[string]text // the maintenance words included
	maintTexts    map[string]text
	rejections    map[string]text // by the CMS's code
	rejectUnknown text            // a code rejections does not know
)

func init() {
	c := tomldata.Must(load(catalogueFile, catalogueTOML))
	screens, texts, maintTexts, rejections, rejectUnknown = c.screens, c.texts, c.maintTexts, c.rejections, c.rejectUnknown
}
