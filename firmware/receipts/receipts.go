// Package receipts lays out what the totem prints, in the citizen's
// language (the documents to sign and the technician's in Italian): the frame
// every operation's receipt shares (ASL, totem, date, masked CF, protocol
// number or provisional id, outcome, QR), the lines of each kind, the
// documents of assisted mode and the technician's elenco invii. Receipts
// show codes and a masked CF, never names or health details (the
// declaration a delegate signs is a form, not a receipt). Layouts are
// pure: the golden files of firmware's tests pin their bytes.
package receipts

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// Frame is what every document carries besides its lines: who prints it,
// where, and the wall clock printed on it.
type Frame struct {
	ASL, Totem, Location string
	// Town is where the documents to sign are signed (the ASL's town,
	// not the totem's spot in the lobby); empty leaves a blank to fill.
	Town string
	Now  time.Time
	// Zone is the time zone of the times printed (the citizen's, not
	// the host's: Europe/Rome by default in totemd); nil is time.Local.
	Zone *time.Location
	// Link, when set, is what the QR code of an answered receipt
	// carries: an ASL's page with {protocollo} replaced by the protocol
	// number. Empty, the QR carries the protocol number as text, which
	// any phone shows and copies.
	Link string
	// Lang is the language the citizen chose: the frame and the CMS's
	// refusals follow it.
	Lang screens.Lang
}

// In is t in the frame's zone.
func (f Frame) In(t time.Time) time.Time {
	if f.Zone == nil {
		return t.Local()
	}
	return t.In(f.Zone)
}

// qr is what the QR code of a receipt carries: for an answered operation
// the ASL's link or "Protocollo N", for a provisional one the local id.
func (f Frame) qr(e outbox.Entry) string {
	if !e.Done {
		return "Identificativo locale " + LocalID(f.Totem, e.Seq)
	}
	p := e.Result.Transport.Protocol
	if f.Link != "" {
		return strings.ReplaceAll(f.Link, "{protocollo}", url.QueryEscape(p))
	}
	return "Protocollo " + p
}

// tr is the text of key in the frame's language: a word of the frame or
// a line of an operation's receipt (receipts.toml's [frame] and [lines]).
// The lines follow the citizen's language (issue 17 item 12); the
// documents the ASL keeps and the citizen signs — the acceptance form, the
// dichiarazione sostitutiva, the informativa — are legal documents and
// stay in Italian whatever the session's language.
func (f Frame) tr(key string) string {
	if t, ok := words.frame[key]; ok {
		return t[f.Lang]
	}
	return words.lines[key][f.Lang]
}

// italian is the frame in Italian, for the documents that stay Italian.
func (f Frame) italian() Frame {
	f.Lang = screens.IT
	return f
}

// MaskCF hides the part of a codice fiscale that tells birth date and
// place: RSSMRA80A01H501U → RSS**********01U.
func MaskCF(cf string) string {
	if len(cf) != 16 {
		return "****************"
	}
	return cf[:3] + "**********" + cf[13:]
}

// LocalID is the provisional identifier of an operation not yet answered
// by the hub: totem and sequence number.
func LocalID(totem string, seq uint64) string {
	return fmt.Sprintf("%s-%06d", totem, seq)
}

// Receipt lays out the receipt of an operation. It shows codes and a
// masked CF, never names or health details.
func (f Frame) Receipt(e outbox.Entry, title string, info hal.CardInfo, lines []string) *hal.Doc {
	return f.receipt(e, title, info, lines, false)
}

// Extract lays out what a query (the Storico) printed: the receipt's
// frame with the answer's reference, but no outcome — a query asks for
// nothing to be accepted (issue 17: it printed "Esito: ACCOLTA").
func (f Frame) Extract(e outbox.Entry, title string, info hal.CardInfo, lines []string) *hal.Doc {
	return f.receipt(e, title, info, lines, true)
}

// totemDoc starts a document under the header of what the totem prints
// for itself (a receipt, the elenco invii, the test page): the ASL, the
// totem and its place, a rule, the title large, a feed.
func (f Frame) totemDoc(title string) *hal.Doc {
	return &hal.Doc{Title: title, Blocks: []hal.Block{
		{Kind: hal.Text, Text: f.ASL, Align: hal.Center, Bold: true},
		{Kind: hal.Text, Text: "Totem " + f.Totem + " - " + f.Location, Align: hal.Center},
		{Kind: hal.Rule},
		{Kind: hal.Text, Text: title, Align: hal.Center, Bold: true, Large: true},
		{Kind: hal.Feed},
	}}
}

func (f Frame) receipt(e outbox.Entry, title string, info hal.CardInfo, lines []string, query bool) *hal.Doc {
	d := f.totemDoc(title)
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	text(f.tr("date") + f.In(f.Now).Format("02/01/2006 15:04"))
	if info.CF != "" { // none when the citizen came without the card
		text(f.tr("cf") + MaskCF(info.CF))
	}
	add(hal.Block{Kind: hal.Rule})
	for _, l := range lines {
		text(l)
	}
	add(hal.Block{Kind: hal.Rule})
	switch {
	case !e.Done:
		add(hal.Block{Kind: hal.Text, Text: f.tr("provisional"), Align: hal.Center, Bold: true})
		text(f.tr("local_id") + LocalID(f.Totem, e.Seq))
		text(f.tr("pending"))
	case query && e.Result.Processing.Status != protocol.ProcessingRejected:
		text(f.tr("extract") + e.Result.Transport.Protocol)
	default:
		r := e.Result
		text(f.tr("protocol") + r.Transport.Protocol)
		if r.Processing.Status == protocol.ProcessingRejected {
			// The reason in words — the catalogue's text of each code,
			// never the code itself — and what to do instead (issue 17).
			add(hal.Block{Kind: hal.Text, Text: f.tr("outcome") + f.tr("refused"), Bold: true})
			var said []string
			for _, er := range r.Processing.Errors {
				if s := f.Lang.Rejection(er.Code); !slices.Contains(said, s) {
					said = append(said, s)
					text(f.tr("reason") + s)
				}
			}
			text(f.tr("rejected_next"))
			break
		}
		add(hal.Block{Kind: hal.Text, Text: f.tr("outcome") + f.tr("accepted"), Bold: true})
	}
	add(hal.Block{Kind: hal.QR, Text: f.qr(e)})
	add(hal.Block{Kind: hal.Text, Text: f.tr("keep"), Align: hal.Center})
	return d
}

// The lines of every operation's receipt, in the frame's language (its
// title is registered with its kind, firmware/kinds.go). They show codes and
// outcomes, never health details; the frame (ASL, totem, date, masked CF,
// protocol or provisional id, QR) is added by Receipt.

// ReasonText is the reason r (a revocation's, a reprint's or a reissue's
// code) in Italian, or r when it has no text.
func ReasonText(r string) string { return Frame{}.reason(r) }

// reason is ReasonText in the frame's language.
func (f Frame) reason(r string) string {
	if t, ok := words.reasons[r]; ok {
		return t[f.Lang]
	}
	return r
}

// Activation: the codes sheet of an activation — the first halves and the
// CIP, and where the second halves go — for the holder to keep; nothing
// on it is signed, and the form the ASL keeps carries none of it (issue
// 17).
func (f Frame) Activation(r cms.ActivationResult) []string {
	lines := []string{
		f.tr("pin1") + r.PINFirstHalf,
		f.tr("puk1") + r.PUKFirstHalf,
		f.tr("cip") + r.CIP,
		f.tr("halves_to_both") + r.SecondHalvesTo,
		f.tr("keep_codes"),
	}
	if r.Readers > 0 {
		lines = append(lines, fmt.Sprintf(f.tr("readers_reg"), r.Readers))
	}
	if r.FSE != "" {
		lines = append(lines, f.tr("fse_requested"))
	}
	return lines
}

// CodesTitle is the title of the codes sheet of an activation.
func (f Frame) CodesTitle() string { return f.tr("codes_title") }

// signer names who signs for the holder: the holder, or the delegate by
// the role the law gives them.
var signer = map[string]string{
	"": "del titolare", cms.DelegParental: "del genitore (responsabilità genitoriale)",
	cms.DelegTutor: "del tutore", cms.DelegCurator: "del curatore",
}

// Acceptance: the lines of the acceptance form the ASL keeps, signed by
// the holder or, for a minor or a person under tutela, by the delegate:
// who asked, the statement, the ASL's town and the date, the signature.
// No code is on it. A legal document, it stays in Italian whatever the
// citizen's language.
func (f Frame) Acceptance(r *cms.ActivationRequest) []string {
	kind := ""
	if r.Delegate != nil {
		kind = r.Delegate.Kind
	}
	return append(f.italian().Requester(r.Delegate, r.Document, r.Operator),
		"Il/La sottoscritto/a dichiara di aver ricevuto la tessera TS-CNS attivata e, su un foglio a parte, le prime metà di PIN e PUK e il codice CIP.",
		"", f.place()+", "+f.In(f.Now).Format("02/01/2006"), "",
		"Firma "+signer[kind]+": ____________________")
}

// place is the town documents are signed in, or a blank for it.
func (f Frame) place() string {
	if f.Town == "" {
		return "____________________"
	}
	return f.Town
}

// Reprint: the first halves again, the reason, the second halves' way.
func (f Frame) Reprint(reason string, r cms.ReprintResult) []string {
	return []string{
		f.tr("reason") + f.reason(reason),
		f.tr("pin1") + r.PINFirstHalf,
		f.tr("puk1") + r.PUKFirstHalf,
		f.tr("halves_to") + r.SecondHalvesTo,
	}
}

// Revocation: the revocation and the reissue requested with it, times in
// the frame's zone.
func (f Frame) Revocation(r cms.RevocationResult) []string {
	return []string{
		f.tr("reason") + f.reason(r.Reason),
		f.tr("revoked_at") + f.In(r.RevokedAt).Format("02/01/2006 15:04"),
		f.tr("reissue_req") + r.Reissue,
		f.tr("revoked_dead"),
	}
}

// Reissue: the request for a new card made at an enabled counter, and
// what happens next.
func (f Frame) Reissue(reason string, r cms.ReissueResult) []string {
	return []string{
		f.tr("reason") + f.reason(reason),
		f.tr("reissue_req") + r.Reissue,
		f.tr("reissue_next"),
	}
}

// ReaderRejected: the payment the CMS did not accept, and what to do: the
// receipt of a refusal does not send the citizen to collect a reader.
func (f Frame) ReaderRejected(payment string) []string {
	return []string{f.tr("payment") + payment + f.tr("fee"), f.tr("reader_refused")}
}

// Reader: the payment and the card's reader counter.
func (f Frame) Reader(payment string, r cms.ReaderResult) []string {
	lines := []string{f.tr("payment") + payment + f.tr("fee")}
	if r.Readers > 0 {
		lines = append(lines, fmt.Sprintf(f.tr("readers_card"), r.Readers))
	}
	return append(lines, f.tr("reader_collect"))
}

// Refund: the reader fee given back for a cancelled reader request, the
// paper the citizen takes to the cashier. original is the reader request's
// protocol number (known before the CMS answers), payment its receipt; the
// cancellation's protocol number comes with the CMS's answer.
func (f Frame) Refund(original, payment string, r cms.RefundResult) []string {
	lines := []string{f.tr("refund_fee"), f.tr("refund_req") + or(original, "-")}
	if r.Cancellation == "" { // not answered yet: the receipt is provisional
		return append(lines, f.tr("payment")+payment, f.tr("refund_pending"))
	}
	return append(lines, f.tr("cancelled")+r.Cancellation, f.tr("payment")+payment, f.tr("refund_cashier"))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// History: each card with its state and the operations on it, each named
// by title (the caller's, in the same language).
func (f Frame) History(r cms.HistoryResult, title func(kind string) string) []string {
	var lines []string
	for i, c := range r.Cards {
		if i > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, f.tr("card")+MaskSerial(c.Serial), f.tr("expiry")+DateIT(c.Expiry)+" - "+words.cardStates[c.State][f.Lang])
		for _, e := range c.Events {
			lines = append(lines, f.In(e.At).Format("02/01/2006")+" "+title(e.Kind)+f.tr("prot")+e.Protocol)
		}
	}
	return lines
}

// MaskSerial hides all but the last four digits of a card serial.
func MaskSerial(serial string) string {
	if len(serial) <= 4 {
		return serial
	}
	return strings.Repeat("*", len(serial)-4) + serial[len(serial)-4:]
}

// PINEvent: what happened on the chip; no code is ever recorded.
func (f Frame) PINEvent(kind string) []string {
	what := f.tr("pin_changed")
	if kind == cms.KindPINUnblock {
		what = f.tr("pin_unblocked")
	}
	return []string{what, f.tr("no_code")}
}

// WrongData: the report and where to go.
func (f Frame) WrongData() []string {
	return []string{f.tr("report_saved"), f.tr("fix_data")}
}

// The documents of assisted mode: the summary of an activation and the
// receipt of an assisted revocation in the frame's language, and the
// dichiarazione sostitutiva a parent, tutore or curatore signs, in
// Italian (a legal document).

// Requester: who asked, the delegate by masked CF only, the document
// the operator checked, the operator.
func (f Frame) Requester(d *cms.Delegation, doc cms.IDDocument, operator string) []string {
	lines := []string{f.tr("req_direct")}
	if d != nil {
		lines = []string{f.tr("req_deleg") + words.delegations[d.Kind][f.Lang] + ")",
			f.tr("delegate_cf") + MaskCF(d.CF)}
	}
	return append(lines, f.tr("doc_checked")+words.documents[doc.Type][f.Lang],
		f.tr("operator_card")+MaskSerial(operator))
}

// Declared is the line of a receipt saying the delegate's declaration was
// signed and kept.
func (f Frame) Declared() string { return f.tr("declared") }

// FSE says what became of the request to create the FSE that follows
// an accepted consent (seed 002): created, being retried by the CMS (how
// often and how many times), or a helpdesk ticket opened and what
// happens next.
func (f Frame) FSE(r cms.ConsentResult) []string {
	switch r.FSE {
	case cms.FSECreated:
		return []string{f.tr("fse_active")}
	case cms.FSEPending:
		return []string{fmt.Sprintf(f.tr("fse_pending"), f.every(r.RetryEvery), r.Retries)}
	case cms.FSETicket:
		if r.TicketLevel == 1 {
			return []string{f.tr("fse_bad_cf"), fmt.Sprintf(f.tr("ticket_cf"), r.Ticket)}
		}
		return []string{fmt.Sprintf(f.tr("fse_tech"), r.Attempts), fmt.Sprintf(f.tr("ticket_tech"), r.Ticket)}
	}
	return nil
}

// every is Every in the frame's language.
func (f Frame) every(s int) string {
	if f.Lang == screens.IT {
		return Every(s)
	}
	unit := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case s >= 3600 && s%3600 == 0:
		return unit(s/3600, "hour")
	case s >= 60 && s%60 == 0:
		return unit(s/60, "minute")
	}
	return unit(s, "second")
}

// Every says an interval in seconds the way a receipt does: "1 minuto",
// "5 minuti", "2 ore", "30 secondi".
func Every(s int) string {
	unit := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	switch {
	case s >= 3600 && s%3600 == 0:
		return unit(s/3600, "ora", "ore")
	case s >= 60 && s%60 == 0:
		return unit(s/60, "minuto", "minuti")
	}
	return unit(s, "secondo", "secondi")
}

// aslDoc starts a document that is the ASL's rather than the totem's (a
// notice, a declaration to sign): the ASL, a rule, the heading large, the
// law it follows, a feed.
func (f Frame) aslDoc(title, heading, law string) *hal.Doc {
	return &hal.Doc{Title: title, Blocks: []hal.Block{
		{Kind: hal.Text, Text: f.ASL, Align: hal.Center, Bold: true},
		{Kind: hal.Rule},
		{Kind: hal.Text, Text: heading, Align: hal.Center, Bold: true, Large: true},
		{Kind: hal.Text, Text: law, Align: hal.Center},
		{Kind: hal.Feed},
	}}
}

// Informativa is the printable notice on the processing of the data of
// the Fascicolo Sanitario Elettronico, which the citizen reads before
// giving the consents of policy pol.
func (f Frame) Informativa(pol cms.Policy) *hal.Doc {
	d := f.aslDoc("Informativa FSE", "Informativa sul Fascicolo Sanitario Elettronico",
		"(art. 13 Regolamento UE 2016/679; art. 12 D.L. 179/2012)")
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	text("Il Fascicolo Sanitario Elettronico (FSE) raccoglie i documenti sanitari che La riguardano. " +
		"Titolare del trattamento è la Regione; i dati sono trattati per cura, prevenzione, ricerca e governo sanitario.")
	text("I consensi sono liberi: negarli non toglie alcuna prestazione. Si possono cambiare in ogni momento, " +
		"al totem o allo sportello, e valgono dal momento in cui sono registrati.")
	text("Consensi richiesti (politica " + pol.ID + "):")
	for _, c := range pol.Consents {
		text("- " + c.Label)
	}
	text("Per un minore o una persona sotto tutela li rilascia il genitore, il tutore o il curatore, allo sportello, " +
		"con una dichiarazione sostitutiva.")
	add(hal.Block{Kind: hal.Feed})
	text(f.Location + ", " + f.Now.Format("02/01/2006"))
	return d
}

// ActivationSummary: the summary of an activation (seed 002, step
// 15); the first halves are on the acceptance form, not here.
func (f Frame) ActivationSummary(r *cms.ActivationRequest, res cms.ActivationResult) []string {
	lines := f.Requester(r.Delegate, r.Document, r.Operator)
	if r.Declaration {
		lines = append(lines, f.Declared())
	}
	lines = append(lines, f.tr("halves_to_both")+res.SecondHalvesTo, f.tr("first_on_form"))
	if r.Reader != nil {
		lines = append(lines, f.tr("reader_receipt")+r.Reader.Reference+f.tr("fee"))
	}
	if r.Consents != nil {
		lines = append(lines, fmt.Sprintf(f.tr("consents_saved"), r.Consents.Policy))
		if res.FSEDetail != nil {
			lines = append(lines, f.FSE(*res.FSEDetail)...)
		}
	}
	return lines
}

// RevocationAssisted: the revocation, the reissue, who asked.
func (f Frame) RevocationAssisted(res cms.RevocationResult, d *cms.Delegation, doc cms.IDDocument, operator string) []string {
	return append(f.Revocation(res), f.Requester(d, doc, operator)...)
}

// Declaration is the pre-filled dichiarazione sostitutiva (DPR 445/2000)
// of a parent, tutore or curatore, printed for signature and kept by the
// operator. It names both people in full: it is a form to sign, not a
// receipt, and the print queue keeps no copy of it.
func (f Frame) Declaration(holder hal.CardInfo, d cms.Delegation, doc cms.IDDocument) *hal.Doc {
	return f.DeclarationFor(cms.KindActivation, holder, d, doc)
}

// declared is what a delegate declares to do for the holder, by the kind
// of the operation the declaration goes with.
var declared = map[string]string{
	cms.KindActivation: "e ne chiede l'attivazione in sua vece.",
	cms.KindConsent:    "e rilascia in sua vece i consensi al Fascicolo Sanitario Elettronico.",
	cms.KindReissue:    "e chiede in sua vece una nuova tessera.",
}

// DeclarationFor is the dichiarazione sostitutiva a delegate signs for an
// operation of kind (activation, consents, reissue).
func (f Frame) DeclarationFor(kind string, holder hal.CardInfo, d cms.Delegation, doc cms.IDDocument) *hal.Doc {
	what := map[string]string{
		cms.DelegParental: "di esercitare la responsabilità genitoriale sul minore",
		cms.DelegTutor:    "di essere tutore di",
		cms.DelegCurator:  "di essere curatore di",
	}[d.Kind]
	doc.Expiry = DateIT(doc.Expiry)
	out := f.aslDoc("Dichiarazione sostitutiva", "Dichiarazione sostitutiva", "(artt. 46 e 47 D.P.R. 445/2000)")
	out.Sensitive = true
	add := func(b hal.Block) { out.Blocks = append(out.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	text("Il/La sottoscritto/a " + d.Name + ", codice fiscale " + d.CF + ", identificato/a con " +
		words.documents[doc.Type][screens.IT] + " n. " + doc.Number + " (scadenza " + doc.Expiry + "), consapevole delle " +
		"sanzioni penali previste dall'art. 76 del D.P.R. 445/2000 per le dichiarazioni mendaci,")
	add(hal.Block{Kind: hal.Text, Text: "DICHIARA", Align: hal.Center, Bold: true})
	text(what + " " + holder.Surname + " " + holder.Name + ", codice fiscale " + holder.CF +
		", titolare della tessera sanitaria TS-CNS n. " + MaskSerial(holder.Serial) + ", " + declared[kind])
	add(hal.Block{Kind: hal.Feed})
	text(f.place() + ", " + f.In(f.Now).Format("02/01/2006"))
	add(hal.Block{Kind: hal.Feed})
	text("Firma del dichiarante: ____________________")
	add(hal.Block{Kind: hal.Rule})
	text("Riservato all'operatore: firmata in presenza, da conservare agli atti.")
	return out
}

var transportTexts = map[string]string{
	protocol.TransportReceived: "ricevuta", protocol.TransportRefused: "rifiutata (da reinviare)",
}

var processingTexts = map[string]string{
	protocol.ProcessingAccepted: "ACCOLTA", protocol.ProcessingRejected: "RESPINTA",
	protocol.ProcessingPending: "in elaborazione",
}

func orCode(m map[string]string, s string) string {
	if t, ok := m[s]; ok {
		return t
	}
	return s
}

// SendLog lays out entries (newest first) as the elenco invii. Times
// are the totem's clock at enqueue, data only: a "?" marks one taken
// before the clock was synchronised.
func (f Frame) SendLog(entries []outbox.Entry) *hal.Doc {
	d := f.totemDoc("Elenco invii")
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	text("Stampato: " + f.In(f.Now).Format("02/01/2006 15:04"))
	text(fmt.Sprintf("Operazioni: %d, dalla più recente", len(entries)))
	unsynced := false
	for _, e := range entries {
		add(hal.Block{Kind: hal.Rule})
		at := f.In(e.Created).Format("02/01/2006 15:04:05")
		if e.Stamp != nil && !e.Stamp.Synced {
			at += "?"
			unsynced = true
		}
		add(hal.Block{Kind: hal.Text, Text: fmt.Sprintf("N. %d  %s", e.Seq, at), Bold: true})
		text("Tipo: " + e.Kind)
		text("Id: " + e.ID)
		sent := fmt.Sprintf("Invii: %d", e.Attempts)
		if !e.LastSent.IsZero() {
			sent += ", ultimo " + f.In(e.LastSent).Format("02/01 15:04:05")
		}
		text(sent)
		if e.Quarantine != "" {
			text("Stato: in quarantena (" + e.Quarantine + ")")
		}
		switch {
		case e.Result == nil && e.Quarantine == "":
			text("Stato: in attesa di esito")
		case e.Result != nil:
			r := e.Result
			prot := r.Transport.Protocol
			if prot == "" {
				prot = "-"
			}
			text("Protocollo: " + prot)
			tr := "Esito trasmissione: " + orCode(transportTexts, r.Transport.Status)
			if r.Duplicate {
				tr += " (duplicato)"
			}
			text(tr)
			text("Esito elaborazione: " + orCode(processingTexts, r.Processing.Status))
			if len(r.Processing.Errors) > 0 {
				codes := make([]string, len(r.Processing.Errors))
				for i, er := range r.Processing.Errors {
					codes[i] = er.Code
				}
				text("Errori: " + strings.Join(codes, " "))
			}
		}
	}
	add(hal.Block{Kind: hal.Rule})
	if len(entries) == 0 {
		text("Nessuna operazione registrata.")
	}
	if unsynced {
		text("? = orologio del totem non sincronizzato")
	}
	text("Orari secondo l'orologio del totem.")
	return d
}

// SelfRevocation: the card by its masked TEAM code, then the
// revocation and the reissue requested with it.
func (f Frame) SelfRevocation(team string, r cms.RevocationResult) []string {
	return append([]string{f.tr("team") + MaskTEAM(team)}, f.Revocation(r)...)
}

// MaskTEAM hides all but the last four digits of a codice TEAM.
func MaskTEAM(team string) string {
	if len(team) <= 4 {
		return team
	}
	return strings.Repeat("*", len(team)-4) + team[len(team)-4:]
}

// DateIT turns 2030-12-31 into 31/12/2030.
func DateIT(d string) string {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return d
	}
	return t.Format("02/01/2006")
}

// TestPage is the maintenance menu's test page: the totem, the software
// version, every accented letter, the euro sign, sizes, a QR code and a
// barcode — no citizen's data.
func (f Frame) TestPage(version string) *hal.Doc {
	d := f.totemDoc("Pagina di prova")
	add := func(b hal.Block) { d.Blocks = append(d.Blocks, b) }
	text := func(s string) { add(hal.Block{Kind: hal.Text, Text: s}) }
	text("Stampata: " + f.Now.Format("02/01/2006 15:04"))
	text("Versione: " + version)
	text("à è é ì ò ù  À È É Ì Ò Ù")
	text("Importo: 4,20 €")
	add(hal.Block{Kind: hal.Text, Text: "Grassetto", Bold: true})
	add(hal.Block{Kind: hal.Text, Text: "Grande", Large: true})
	add(hal.Block{Kind: hal.Text, Text: "a destra", Align: hal.Right})
	add(hal.Block{Kind: hal.Rule})
	add(hal.Block{Kind: hal.QR, Text: "TOTEM " + f.Totem + " PROVA"})
	add(hal.Block{Kind: hal.Barcode, Text: "PROVA-" + f.Totem})
	add(hal.Block{Kind: hal.Feed})
	add(hal.Block{Kind: hal.Text, Text: "Fine della prova", Align: hal.Center})
	return d
}
