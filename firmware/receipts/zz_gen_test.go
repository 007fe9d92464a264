package receipts

import (
	"os"
	"strings"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/screens"
)

var genSel = map[string]string{
	"cms.ReasonTheft": cms.ReasonTheft, "cms.ReasonLoss": cms.ReasonLoss, "cms.ReasonMalfunction": cms.ReasonMalfunction,
	"cms.ReprintForgotten": cms.ReprintForgotten, "cms.ReprintLost": cms.ReprintLost, "cms.ReprintBlocked": cms.ReprintBlocked,
	"cms.ReprintNotReceived": cms.ReprintNotReceived,
	"cms.CardIssued": string(cms.CardIssued), "cms.CardActive": string(cms.CardActive), "cms.CardRevoked": string(cms.CardRevoked),
	"cms.DelegParental": cms.DelegParental, "cms.DelegTutor": cms.DelegTutor, "cms.DelegCurator": cms.DelegCurator,
	"cms.DocIdentityCard": cms.DocIdentityCard, "cms.DocCIE": cms.DocCIE, "cms.DocLicence": cms.DocLicence, "cms.DocPassport": cms.DocPassport,
}

const genHeader = `# The words of the totem's receipts, in Italian (it) and English (en): a
# receipt follows the citizen's language. Compiled into totemd
# (firmware/receipts, //go:embed) and decoded strictly at start: a key
# misspelt, a key written twice or a text without both languages stops the
# tests and the program, naming this file and the line. The layouts (what
# goes where, the frame, the QR) are code, in receipts.go; the documents
# the ASL keeps and the citizen signs — the acceptance form, the
# dichiarazione sostitutiva, the informativa — are legal documents in
# Italian, written there.
#
# %s and %d are filled by the layouts, in order: keep them in both
# languages. A trailing space is part of the text ("Data: " is followed by
# the date).
#
# [frame]        the frame every receipt shares.
# [lines]        the lines of each operation's receipt.
# [reasons]      the reasons of a revocation, a reprint or a reissue, by
#                their code on the wire.
# [card_states]  a card's state in the Storico, by its code.
# [delegations]  the kind of a delegation on a receipt, by its code.
# [documents]    the identity documents, by their code (the Italian name is
#                also the declaration's).
`

func TestGenTOML(t *testing.T) {
	if os.Getenv("GEN_TOML") == "" {
		t.Skip("GEN_TOML unset")
	}
	var b strings.Builder
	b.WriteString(genHeader)
	group := func(table, name string, get func(key string) ([2]string, bool), skipSel bool, banner []string) {
		doc, elems := genVar(t, []string{"receipts.go"}, name)
		if banner == nil {
			banner = doc
		}
		b.WriteString("\n[" + table + "]\n")
		genLines(&b, banner)
		for _, e := range elems {
			key := e.key
			if v, ok := genSel[key]; ok {
				if skipSel {
					continue
				}
				key = v
			} else if strings.HasPrefix(key, "cms.") {
				t.Fatalf("selector %s", key)
			}
			tx, ok := get(key)
			if !ok {
				t.Fatalf("%s: %s", name, key)
			}
			genLines(&b, e.lead)
			genText(&b, key, tx[screens.IT], tx[screens.EN], e.trail)
		}
	}
	str := func(m map[string][2]string) func(string) ([2]string, bool) {
		return func(k string) ([2]string, bool) { v, ok := m[k]; return v, ok }
	}
	group("frame", "frameTexts", str(frameTexts), false, []string{})
	group("lines", "lineTexts", str(lineTexts), true, []string{"The lines of each operation's receipt (its title is registered with its", "kind, firmware/kinds.go)."})
	group("reasons", "reasons", str(lineTexts), false, []string{})
	group("card_states", "stateText", func(k string) ([2]string, bool) { v, ok := stateText[cms.CardState(k)]; return v, ok }, false, []string{})
	group("delegations", "delegTexts", str(delegTexts), false, []string{})
	group("documents", "docLineTexts", str(docLineTexts), false, []string{})
	if err := os.WriteFile("receipts.toml", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
