package receipts

import (
	_ "embed"

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
	t := &tomldata.Tables{File: name}
	r := &receiptTexts{
		frame:       tomldata.TablePairs[string, [2]string](t, "frame", d.Frame),
		lines:       tomldata.TablePairs[string, [2]string](t, "lines", d.Lines),
		reasons:     tomldata.TablePairs[string, [2]string](t, "reasons", d.Reasons),
		cardStates:  tomldata.TablePairs[cms.CardState, [2]string](t, "card_states", d.CardStates),
		delegations: tomldata.TablePairs[string, [2]string](t, "delegations", d.Delegations),
		documents:   tomldata.TablePairs[string, [2]string](t, "documents", d.Documents),
	}
	if t.Err != nil {
		return nil, t.Err
	}
	return r, nil
}

// words are the tables the layouts read: [documents] names the identity
// documents on a receipt, and in Italian on the declaration.
var words = tomldata.Must(load(textsFile, receiptsTOML))

// lineTexts are the lines' words (TestLinesFollowLanguage checks both
// languages of each).
var lineTexts = words.lines
