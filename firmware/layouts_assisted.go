package firmware

import (
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// The documents of assisted mode, in Italian: the summary of an activation,
// the receipt of an assisted revocation, and the dichiarazione sostitutiva
// a parent, tutore or curatore signs.

var delegTexts = map[string]string{
	cms.DelegParental: "potestà parentale", cms.DelegTutor: "tutore", cms.DelegCurator: "curatore",
}

var docTexts = map[string]string{
	cms.DocIdentityCard: "carta d'identità", cms.DocCIE: "carta d'identità elettronica",
	cms.DocLicence: "patente di guida", cms.DocPassport: "passaporto",
}

// requesterLines: who asked, the delegate by masked CF only, the document
// the operator checked, the operator.
func requesterLines(d *cms.Delegation, doc cms.IDDocument, operator string) []string {
	lines := []string{"Richiesta: diretta, dal titolare"}
	if d != nil {
		lines = []string{"Richiesta: su delega (" + delegTexts[d.Kind] + ")",
			"Delegato: codice fiscale " + MaskCF(d.CF)}
	}
	return append(lines, "Documento verificato: "+docTexts[doc.Type],
		"Operatore: carta "+maskSerial(operator))
}

// activationSummaryLines: the summary of an activation (seed 002, step
// 15); the first halves are on the acceptance form, not here.
func activationSummaryLines(r *cms.ActivationRequest, res cms.ActivationResult) []string {
	lines := requesterLines(r.Delegate, r.Document, r.Operator)
	if r.Declaration {
		lines = append(lines, "Dichiarazione sostitutiva firmata e conservata dall'operatore")
	}
	lines = append(lines, "Le seconde metà di PIN e PUK saranno inviate a: "+res.SecondHalvesTo,
		"Le prime metà sono sul modulo di accettazione.")
	if r.Reader != nil {
		lines = append(lines, "Lettore di smart card: ricevuta "+r.Reader.Reference+" (4,20 €)")
	}
	if r.Consents != nil {
		lines = append(lines, "Consensi FSE registrati (politica "+r.Consents.Policy+")")
	}
	return lines
}

// revocationAssistedLines: the revocation, the reissue, who asked.
func revocationAssistedLines(res cms.RevocationResult, d *cms.Delegation, doc cms.IDDocument, operator string) []string {
	return append(revocationLines(res), requesterLines(d, doc, operator)...)
}

// declaration is the pre-filled dichiarazione sostitutiva (DPR 445/2000)
// of a parent, tutore or curatore, printed for signature and kept by the
// operator. It names both people in full: it is a form to sign, not a
// receipt, and the print queue keeps no copy of it.
func declaration(o Options, now time.Time, holder hal.CardInfo, d cms.Delegation, doc cms.IDDocument) *hal.Doc {
	what := map[string]string{
		cms.DelegParental: "di esercitare la potestà parentale sul minore",
		cms.DelegTutor:    "di essere tutore di",
		cms.DelegCurator:  "di essere curatore di",
	}[d.Kind]
	doc.Expiry = dateIT(doc.Expiry)
	out := &hal.Doc{Title: "Dichiarazione sostitutiva", Sensitive: true}
	add := func(b hal.Block) { out.Blocks = append(out.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	add(hal.Block{Kind: hal.Text, Text: o.ASL, Align: hal.Center, Bold: true})
	add(hal.Block{Kind: hal.Rule})
	add(hal.Block{Kind: hal.Text, Text: "Dichiarazione sostitutiva", Align: hal.Center, Bold: true, Large: true})
	add(hal.Block{Kind: hal.Text, Text: "(artt. 46 e 47 D.P.R. 445/2000)", Align: hal.Center})
	add(hal.Block{Kind: hal.Feed})
	text("Il/La sottoscritto/a " + d.Name + ", codice fiscale " + d.CF + ", identificato/a con " +
		docTexts[doc.Type] + " n. " + doc.Number + " (scadenza " + doc.Expiry + "), consapevole delle " +
		"sanzioni penali previste dall'art. 76 del D.P.R. 445/2000 per le dichiarazioni mendaci,")
	add(hal.Block{Kind: hal.Text, Text: "DICHIARA", Align: hal.Center, Bold: true})
	text(what + " " + holder.Surname + " " + holder.Name + ", codice fiscale " + holder.CF +
		", titolare della tessera sanitaria TS-CNS n. " + maskSerial(holder.Serial) +
		", e ne chiede l'attivazione in sua vece.")
	add(hal.Block{Kind: hal.Feed})
	text(o.Location + ", " + now.Format("02/01/2006"))
	add(hal.Block{Kind: hal.Feed})
	text("Firma del dichiarante: ____________________")
	add(hal.Block{Kind: hal.Rule})
	text("Riservato all'operatore: firmata in presenza, da conservare agli atti.")
	return out
}
