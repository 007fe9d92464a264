package receipts

import (
	_ "embed"
	"fmt"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/internal/tomldata"
)

// The receipts' words are data: receipts.toml, beside this file, holds
// them in Italian and English, compiled in and decoded once at start. A
// malformed file panics at init naming its line; the package's tests load
// it first.

//go:embed receipts.toml
var receiptsTOML []byte

const textsFile = "firmware/receipts/receipts.toml"

// textsData is receipts.toml.
type textsData struct {
	Frame       map[string]tomldata.Text `toml:"frame"`
	Lines       map[string]tomldata.Text `toml:"lines"`
	Reasons     map[string]tomldata.Text `toml:"reasons"`
	CardStates  map[string]tomldata.Text `toml:"card_states"`
	Delegations map[string]tomldata.Text `toml:"delegations"`
	Documents   map[string]tomldata.Text `toml:"documents"`
}

// receiptTexts is the file decoded, each table by its key.
type receiptTexts struct {
	frame, lines, reasons, delegations, documents map[string][2]string
	cardStates                                    map[cms.CardState][2]string
}

// load decodes the receipts' texts file name strictly, every table
// present and every text in both languages.
func load(name string, b []byte) (*receiptTexts, error) {
	var d textsData
	if err := tomldata.Decode(name, b, &d); err != nil {
		return nil, err
	}
	t := &receiptTexts{}
	var err error
	for _, tb := range []struct {
		name string
		src  map[string]tomldata.Text
		dst  *map[string][2]string
	}{
		{"frame", d.Frame, &t.frame}, {"lines", d.Lines, &t.lines}, {"reasons", d.Reasons, &t.reasons},
		{"delegations", d.Delegations, &t.delegations}, {"documents", d.Documents, &t.documents},
	} {
		if len(tb.src) == 0 {
			return nil, fmt.Errorf("%s: no [%s]", name, tb.name)
		}
		if *tb.dst, err = tomldata.Pairs[string, [2]string](name, tb.name, tb.src); err != nil {
			return nil, err
		}
	}
	if len(d.CardStates) == 0 {
		return nil, fmt.Errorf("%s: no [card_states]", name)
	}
	if t.cardStates, err = tomldata.Pairs[cms.CardState, [2]string](name, "card_states", d.CardStates); err != nil {
		return nil, err
	}
	return t, nil
}

var loaded = tomldata.Must(load(textsFile, receiptsTOML))

// The tables the layouts read. docLineTexts name the identity documents
// on a receipt, and in Italian on the declaration.
var (
	frameTexts   = loaded.frame
	lineTexts    = loaded.lines
	reasons      = loaded.reasons
	stateText    = loaded.cardStates
	delegTexts   = loaded.delegations
	docLineTexts = loaded.documents
)
