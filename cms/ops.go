package cms

import (
	"bytes"
	"encoding/json"
	"net/mail"
	"strings"
	"time"

	"github.com/aslcns/totem/cms/opkind"
	"github.com/aslcns/totem/internal/asciiset"
)

// Operation kinds: the value of Op.Kind on the wire, declared with their
// shared rules in cms/opkind (one declaration per kind); the names stay here
// for the CMS's readers.
const (
	KindConsent      = opkind.Consent      // Consensi FSE: ConsentRequest
	KindActivation   = opkind.Activation   // Attivazione: ActivationRequest → ActivationResult
	KindReprint      = opkind.Reprint      // Ristampa PIN/PUK: ReprintRequest → ReprintResult
	KindRevocation   = opkind.Revocation   // Revoca: RevocationRequest → RevocationResult
	KindReader       = opkind.Reader       // Richiesta lettore: ReaderRequest → ReaderResult
	KindHistory      = opkind.History      // Storico: HistoryRequest → HistoryResult
	KindPINChange    = opkind.PINChange    // Cambio PIN on the chip: PINEvent
	KindPINUnblock   = opkind.PINUnblock   // Sblocco PIN con PUK on the chip: PINEvent
	KindSuspension   = opkind.Suspension   // Sospensione: always refused
	KindReactivation = opkind.Reactivation // Riattivazione: always refused
	KindReissue      = opkind.Reissue      // Riemissione: ReissueRequest → ReissueResult
	KindWrongData    = opkind.WrongData    // Dati errati: WrongDataReport → WrongDataResult
	KindLookup       = opkind.CardLookup   // the second identity check: LookupRequest → LookupResult
	// KindVoid settles a sequence number whose operation the totem can
	// never send (corrupt or unreadable record, shed telemetry): payload
	// {"reason":"…"}, always rejected with CodeVoid, nothing else changes.
	KindVoid = opkind.Void
	// KindAudit carries an audit entry to the hub (cms/opkind.Audit).
	KindAudit = opkind.Audit
)

// Online reports whether an operation of kind needs the CMS's answer before
// the totem can go on (it is not queued for later), as its declaration in
// cms/opkind says.
func Online(kind string) bool { return opkind.Online(kind) }

// Delegation kinds: who may act for the holder.
const (
	DelegParental = "potesta_parentale" // a parent, for a minor
	DelegTutor    = "tutore"
	DelegCurator  = "curatore"
)

// Delegation is the person acting for the holder.
type Delegation struct {
	Kind string `json:"kind"`
	Name string `json:"name"` // nominativo
	CF   string `json:"cf"`
}

// Identity document types.
const (
	DocIdentityCard = "carta_identita"
	DocCIE          = "cie"
	DocLicence      = "patente"
	DocPassport     = "passaporto"
)

// IDDocument is the identity document of the person present (the holder or
// the delegate), as the operator read it.
type IDDocument struct {
	Type   string `json:"type"`
	Number string `json:"number"`
	Issuer string `json:"issuer"`
	Expiry string `json:"expiry"` // YYYY-MM-DD
	// Checked is the operator's confirmation that the document matches the
	// person and the holder's data shown by the CMS.
	Checked bool `json:"checked"`
}

// Second-half delivery channels.
const (
	ContactSMS   = "sms"
	ContactEmail = "email"
)

// Contact is where the second halves of PIN and PUK go.
type Contact struct {
	Channel string `json:"channel"`
	Address string `json:"address"`
}

// Masked returns the contact fit for a receipt: "SMS ******0001",
// "e-mail m***@example.it".
func (c Contact) Masked() string {
	switch c.Channel {
	case ContactSMS:
		n := len(c.Address)
		if n <= 4 {
			return "SMS"
		}
		return "SMS " + strings.Repeat("*", n-4) + c.Address[n-4:]
	case ContactEmail:
		at := strings.LastIndexByte(c.Address, '@')
		if at < 1 {
			return "e-mail"
		}
		return "e-mail " + c.Address[:1] + "***" + c.Address[at:]
	}
	return ""
}

// ReaderFeeCents is the price of a card reader: 4,20 €.
const ReaderFeeCents = 420

// Payment is the receipt of a reader purchase.
type Payment struct {
	Reference   string `json:"reference"` // unique: a receipt buys one reader
	AmountCents int    `json:"amount_cents"`
}

// ConsentSet is the consents collected within another operation.
type ConsentSet struct {
	Policy   string    `json:"policy"`
	Consents []Consent `json:"consents"`
}

// Reasons of a revocation or a reissue.
const (
	ReasonTheft       = "furto"
	ReasonLoss        = "smarrimento"
	ReasonMalfunction = "malfunzionamento"
)

// Reasons of a PIN/PUK reprint.
const (
	ReprintForgotten   = "dimenticato"  // PIN or PUK forgotten
	ReprintLost        = "smarrito"     // the printed first halves lost
	ReprintNotReceived = "non_ricevuto" // the second halves never arrived
	ReprintBlocked     = "bloccato"     // PIN and PUK blocked
)

// Scopes of a history request.
const (
	HistoryAll  = "cf"   // every card of the holder's CF
	HistoryCard = "card" // this card only
)

// Results of a PIN operation on the chip.
const (
	PINOK      = "ok"
	PINWrong   = "errato"
	PINBlocked = "bloccato"
)

// FSE creation states, as ConsentResult and ActivationResult report them.
const (
	FSECreated = "created" // the FSE exists
	FSEPending = "pending" // a technical error: the CMS retries by itself
	FSETicket  = "ticket"  // a helpdesk ticket is open
)

// GuidanceSceltaRevoca is what a citizen whose personal data are wrong is told.
const GuidanceSceltaRevoca = "I dati anagrafici vanno corretti allo sportello Scelta e Revoca della propria ASL: " +
	"lì la tessera viene ritirata e la nuova arriva a casa."

// ActivationRequest is the payload of a KindActivation operation: assisted
// only, direct or by delegation.
type ActivationRequest struct {
	Card     CardRef     `json:"card"`
	Channel  string      `json:"channel"`
	Operator string      `json:"operator"`
	Delegate *Delegation `json:"delegate,omitempty"`
	// Declaration: the dichiarazione sostitutiva (potestà parentale or
	// tutela) was printed, signed and kept. Required with a delegate.
	Declaration bool       `json:"declaration,omitempty"`
	Document    IDDocument `json:"document"`
	Contact     Contact    `json:"contact"`
	// Privacy: the informativa was read and the data-processing flag set.
	Privacy  bool        `json:"privacy"`
	Reader   *Payment    `json:"reader,omitempty"`   // a reader bought in the same session
	Consents *ConsentSet `json:"consents,omitempty"` // FSE consents given in the same session
}

// ActivationResult is the Data of an accepted activation.
type ActivationResult struct {
	PINFirstHalf   string `json:"pin_first_half"`
	PUKFirstHalf   string `json:"puk_first_half"`
	CIP            string `json:"cip"`
	SecondHalvesTo string `json:"second_halves_to"` // Contact.Masked
	Readers        int    `json:"readers,omitempty"`
	FSE            string `json:"fse,omitempty"` // when consents were given
	// FSEDetail is what became of the FSE, as a consent's answer says it
	// (the helpdesk ticket, the retry rule), when consents were given.
	FSEDetail *ConsentResult `json:"fse_detail,omitempty"`
}

// Validate checks an activation against policy (for the consents) and the
// card record at time now.
func (r *ActivationRequest) Validate(p Policy, card *Card, now time.Time) []Reject {
	rs := checkAssistedOnly(r.Channel, r.Operator, "L'attivazione si fa solo allo sportello, con un operatore.")
	crs, ok := checkCard(r.Card, card, now)
	rs = append(rs, crs...)
	if !ok {
		return rs
	}
	switch card.State {
	case CardActive:
		rs = append(rs, Reject{CodeAlreadyActive, "La tessera è già attiva: per avere di nuovo i codici usare Ristampa PIN/PUK."})
	case CardIssued:
	default:
		// revoked: said by checkCard
	}
	if card.DataReported {
		rs = append(rs, Reject{CodeDataReported, GuidanceSceltaRevoca})
	}
	if r.Delegate != nil {
		rs = append(rs, r.Delegate.check(card, now)...)
		if !r.Declaration {
			rs = append(rs, Reject{CodeDeclaration, "Stampare la dichiarazione sostitutiva, farla firmare e conservarla."})
		}
	}
	rs = append(rs, r.Document.check(now)...)
	rs = append(rs, r.Contact.check()...)
	if !r.Privacy {
		rs = append(rs, Reject{CodePrivacy, "Serve la presa visione dell'informativa sul trattamento dei dati."})
	}
	if r.Reader != nil {
		rs = append(rs, r.Reader.check()...)
	}
	if r.Consents != nil {
		rs = append(rs, checkConsents(p, r.Consents.Policy, r.Consents.Consents)...)
	}
	return rs
}

// Attendance is how a request about a card is made: self-service at the
// totem (no operator, no document: the card and its PIN stand for the
// holder), or assisted at a counter by the operator whose card is Operator,
// who checked the identity document of the person present, the holder or
// a delegate. The requests embed it: its members are theirs on the wire.
type Attendance struct {
	Channel  string      `json:"channel"`            // SelfService or Assisted
	Operator string      `json:"operator,omitempty"` // operator card serial, assisted only
	Document *IDDocument `json:"document,omitempty"` // assisted: required
}

// check checks the channel with the operator's card and, at a counter, the
// document.
func (a *Attendance) check(now time.Time) []Reject {
	return append(checkChannel(a.Channel, a.Operator), checkAssistedDocument(a.Channel, a.Document, now)...)
}

// ReprintRequest is the payload of a KindReprint operation.
type ReprintRequest struct {
	Card CardRef `json:"card"`
	Attendance
	Delegate *Delegation `json:"delegate,omitempty"`
	Reason   string      `json:"reason"`
	// Contact is a new channel for the second halves (seed 001, Ristampa
	// e.), chosen at the counter and kept for the card; nil: the one on
	// file.
	Contact *Contact `json:"contact,omitempty"`
}

// ReprintResult is the Data of an accepted reprint.
type ReprintResult struct {
	PINFirstHalf   string `json:"pin_first_half"`
	PUKFirstHalf   string `json:"puk_first_half"`
	SecondHalvesTo string `json:"second_halves_to"`
}

// Validate checks a reprint against the card record at time now.
func (r *ReprintRequest) Validate(card *Card, now time.Time) []Reject {
	rs, ok := checkActiveCardRequest(&r.Attendance, r.Card, card, now)
	if !ok {
		return rs
	}
	switch {
	case r.Contact != nil && r.Channel != Assisted:
		// Without a document checked by an operator the second halves
		// could be sent to whoever holds the card.
		rs = append(rs, Reject{CodeContact, "Il recapito per la seconda parte dei codici si cambia allo sportello, con un documento."})
	case r.Contact != nil:
		rs = append(rs, r.Contact.check()...)
	case card.State == CardActive && card.Contact == nil:
		rs = append(rs, Reject{CodeContact, "Nessun recapito per la seconda parte dei codici: rivolgersi allo sportello."})
	}
	if r.Delegate != nil {
		rs = append(rs, r.Delegate.check(card, now)...)
	}
	switch r.Reason {
	case ReprintForgotten, ReprintLost, ReprintNotReceived, ReprintBlocked:
	default:
		rs = append(rs, Reject{CodeReason, "Indicare il motivo della ristampa."})
	}
	return rs
}

// RevocationRequest is the payload of a KindRevocation operation. Assisted,
// the card is named by Card or TEAM; self-service, by the typed TEAM code
// with the CIP, which the CMS verifies.
type RevocationRequest struct {
	Card CardRef `json:"card,omitzero"`
	TEAM string  `json:"team,omitempty"`
	CIP  string  `json:"cip,omitempty"`
	Attendance
	Delegate *Delegation `json:"delegate,omitempty"`
	Reason   string      `json:"reason"`
}

// RevocationResult is the Data of an accepted revocation.
type RevocationResult struct {
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason"`
	Reissue   string    `json:"reissue"` // id of the reissue request recorded with it
}

// Validate checks a revocation against the card it names (found by serial
// or TEAM; nil if none) at time now. The CIP itself is checked centrally.
func (r *RevocationRequest) Validate(card *Card, now time.Time) []Reject {
	// Self-service the card is named by the TEAM code with the CIP; at a
	// counter the document checked is required (Attendance.check).
	rs := r.Attendance.check(now)
	if r.Channel == SelfService {
		if !digits(r.TEAM, 20) {
			rs = append(rs, Reject{CodeTEAM, "Codice TEAM non valido: sono le 20 cifre sul retro della tessera."})
		}
		if !digits(r.CIP, CIPDigits) {
			rs = append(rs, Reject{CodeCIPWrong, "CIP mancante o non valido."})
		}
	}
	if r.Card.Serial == "" && r.TEAM == "" {
		return append(rs, Reject{CodeCardUnknown, "Indicare la tessera da revocare."})
	}
	if card == nil {
		return append(rs, Reject{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if r.Card.Serial != "" {
		crs, _ := checkCard(r.Card, card, now)
		rs = append(rs, crs...)
	} else {
		if card.State == CardRevoked {
			rs = append(rs, Reject{CodeCardRevoked, "La tessera è revocata."})
		}
		rs = append(rs, checkExpiry(card, now)...)
	}
	if r.TEAM != "" && TEAM(card.Serial) != r.TEAM {
		rs = append(rs, Reject{CodeTEAM, "Il codice TEAM non corrisponde alla tessera."})
	}
	if r.Delegate != nil {
		rs = append(rs, r.Delegate.check(card, now)...)
	}
	rs = append(rs, checkReason(r.Reason)...)
	return rs
}

// ReaderRequest is the payload of a KindReader operation.
type ReaderRequest struct {
	Card CardRef `json:"card"`
	Attendance
	Payment Payment `json:"payment"`
}

// ReaderResult is the Data of an accepted reader request.
type ReaderResult struct {
	Readers int `json:"readers"` // the card's reader counter after it
}

// Validate checks a reader request against the card record at time now.
// That the payment reference was never used is checked by the backend.
func (r *ReaderRequest) Validate(card *Card, now time.Time) []Reject {
	rs, ok := checkActiveCardRequest(&r.Attendance, r.Card, card, now)
	if !ok {
		return rs
	}
	return append(rs, r.Payment.check()...)
}

// HistoryRequest is the payload of a KindHistory operation.
type HistoryRequest struct {
	Card CardRef `json:"card"`
	Attendance
	Scope string `json:"scope"` // HistoryAll or HistoryCard
}

// HistoryEvent is one accepted operation on a card.
type HistoryEvent struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Protocol string    `json:"protocol"`
	Channel  string    `json:"channel,omitempty"`
	Detail   string    `json:"detail,omitempty"` // a code: reason, delegation kind, PIN result…
}

// CardHistory is one card in a HistoryResult.
type CardHistory struct {
	Serial       string         `json:"serial"`
	TEAM         string         `json:"team,omitempty"`
	Expiry       string         `json:"expiry"`
	State        CardState      `json:"state"`
	ActivatedAt  time.Time      `json:"activated_at,omitzero"`
	RevokedAt    time.Time      `json:"revoked_at,omitzero"`
	RevokeReason string         `json:"revoke_reason,omitempty"`
	Readers      int            `json:"readers,omitempty"`
	Events       []HistoryEvent `json:"events,omitempty"`
}

// HistoryResult is the Data of an accepted history request.
type HistoryResult struct {
	Cards []CardHistory `json:"cards"`
}

// Validate checks a history request against the card record at time now.
// A revoked card may be looked up only at a counter.
func (r *HistoryRequest) Validate(card *Card, now time.Time) []Reject {
	rs := r.Attendance.check(now)
	if r.Scope != HistoryAll && r.Scope != HistoryCard {
		rs = append(rs, Reject{CodeBadPayload, "Scegliere tutte le tessere o solo questa."})
	}
	if card == nil {
		return append(rs, Reject{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.CF != r.Card.CF || card.Expiry != r.Card.Expiry {
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.State == CardRevoked && r.Channel == SelfService {
		rs = append(rs, Reject{CodeCardRevoked, "La tessera è revocata: lo storico si consulta allo sportello."})
	}
	return rs
}

// PINEvent is the payload of KindPINChange and KindPINUnblock: the audit of
// something the citizen did on the chip, self-service. It never carries a
// PIN or a PUK; see CheckNoPIN.
type PINEvent struct {
	Card    CardRef `json:"card"`
	Channel string  `json:"channel"`
	Result  string  `json:"result"` // PINOK, PINWrong, PINBlocked
}

// Validate checks a PIN event against the card record at time now. The
// event happened on the chip: it is recorded whatever the card's state.
func (r *PINEvent) Validate(card *Card, now time.Time) []Reject {
	var rs []Reject
	if r.Channel != SelfService {
		rs = append(rs, Reject{CodeBadPayload, "Il cambio e lo sblocco del PIN li fa il cittadino, al totem."})
	}
	switch r.Result {
	case PINOK, PINWrong, PINBlocked:
	default:
		rs = append(rs, Reject{CodeBadPayload, "Esito dell'operazione sul PIN non valido."})
	}
	if card == nil {
		return append(rs, Reject{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.CF != r.Card.CF || card.Expiry != r.Card.Expiry {
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	return rs
}

// CheckNoPIN refuses a payload that holds anything resembling a PIN or a
// PUK: a member named like one, or a value of 4 to 8 digits. A PIN goes
// from the keypad to the chip and nowhere else.
func CheckNoPIN(payload []byte) []Reject {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil // not JSON: the strict decoder says so
	}
	if pinLike(v) {
		return []Reject{{CodePINData, "L'operazione contiene dati riservati (PIN o PUK) e non è stata registrata."}}
	}
	return nil
}

func pinLike(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			k = strings.ToLower(k)
			if strings.Contains(k, "pin") || strings.Contains(k, "puk") || strings.Contains(k, "cip") {
				return true
			}
			if pinLike(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if pinLike(e) {
				return true
			}
		}
	case string:
		return len(v) >= 4 && len(v) <= 8 && digits(v, len(v))
	case json.Number:
		s := strings.TrimPrefix(v.String(), "-")
		return len(s) >= 4 && len(s) <= 8 && digits(s, len(s))
	}
	return false
}

// ReissueRequest is the payload of a KindReissue operation: only at a
// counter enabled to reissue, only for the holder or the legal guardian.
type ReissueRequest struct {
	Card CardRef `json:"card"`
	// Attendance: assisted only, the document required.
	Attendance
	Delegate *Delegation `json:"delegate,omitempty"` // a parent or a tutore
	// Declaration: the delegate's dichiarazione sostitutiva was printed,
	// signed and kept. Required with a delegate.
	Declaration bool   `json:"declaration,omitempty"`
	Reason      string `json:"reason"`
}

// ReissueResult is the Data of an accepted reissue request.
type ReissueResult struct {
	Reissue string `json:"reissue"`
}

// Validate checks a reissue request against the card record at time now.
// counter is the hub's word (its fleet registry, cms.Op.Counter) that the
// totem stands at a counter enabled to reissue: the request carries no
// claim of its own. A revoked or expired card may be reissued.
func (r *ReissueRequest) Validate(card *Card, counter bool, now time.Time) []Reject {
	if !counter {
		return []Reject{{CodeReissueCounter, "La riemissione si chiede solo agli sportelli aziendali abilitati."}}
	}
	rs := checkAssistedOnly(r.Channel, r.Operator, "La riemissione si chiede allo sportello, con un operatore.")
	rs = append(rs, checkAssistedDocument(Assisted, r.Document, now)...)
	if card == nil {
		return append(rs, Reject{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.CF != r.Card.CF || card.Expiry != r.Card.Expiry {
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if r.Delegate != nil {
		if r.Delegate.Kind != DelegParental && r.Delegate.Kind != DelegTutor {
			rs = append(rs, Reject{CodeReissueRequester, "La nuova tessera la chiede solo il titolare, il genitore o il tutore."})
		} else {
			rs = append(rs, checkDelegate(r.Channel, r.Delegate, r.Declaration, card, now)...)
		}
	}
	return append(rs, checkReason(r.Reason)...)
}

// LookupRequest is the payload of a KindLookup operation: at a counter,
// the operator reads the CMS's record of the card (by the chip's data, or
// by the TEAM code of a card not in the slot) to compare it with the
// identity document before confirming (seed 002, step 5).
type LookupRequest struct {
	Card     CardRef `json:"card,omitzero"`
	TEAM     string  `json:"team,omitempty"`
	Channel  string  `json:"channel"`
	Operator string  `json:"operator"`
}

// LookupResult is the Data of an accepted lookup: the holder as the CMS
// knows them, the card's state and where the second halves of PIN and
// PUK go (masked).
type LookupResult struct {
	Serial    string    `json:"serial"` // the card the CMS found (by TEAM code, a card not in the slot)
	Surname   string    `json:"surname"`
	Name      string    `json:"name"`
	BirthDate string    `json:"birth_date,omitempty"` // YYYY-MM-DD
	Expiry    string    `json:"expiry"`
	State     CardState `json:"state"`
	Contact   string    `json:"contact,omitempty"` // Contact.Masked
}

// Validate checks a lookup against the card it names (nil if none): only
// an operator reads the record, and the chip's data must match it (a
// mismatch sends the citizen to the sportello Scelta e Revoca). A card
// named by its TEAM code with the CF and expiry typed from it must carry
// those too.
func (r *LookupRequest) Validate(card *Card) []Reject {
	rs := checkAssistedOnly(r.Channel, r.Operator, "I dati dell'archivio li consulta l'operatore, allo sportello.")
	switch {
	case r.Card.Serial == "" && !digits(r.TEAM, 20):
		return append(rs, Reject{CodeCardUnknown, "Indicare la tessera."})
	case card == nil:
		return append(rs, Reject{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."})
	case (r.Card.Serial != "" || r.Card.CF != "") && (card.CF != r.Card.CF || card.Expiry != r.Card.Expiry):
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	return rs
}

// Personal data fields a WrongDataReport may name.
var wrongDataFields = map[string]bool{
	"cognome": true, "nome": true, "sesso": true, "data_nascita": true,
	"luogo_nascita": true, "codice_fiscale": true,
}

// WrongDataReport is the payload of a KindWrongData operation: the holder's
// personal data on the card are wrong. It is recorded; the answer is the
// guidance to the sportello Scelta e Revoca.
type WrongDataReport struct {
	Card     CardRef  `json:"card"`
	Channel  string   `json:"channel"`
	Operator string   `json:"operator,omitempty"`
	Fields   []string `json:"fields,omitempty"` // which data are wrong: cognome, nome, …
}

// WrongDataResult is the Data of an accepted wrong-data report.
type WrongDataResult struct {
	Report   string `json:"report"`
	Guidance string `json:"guidance"`
}

// Validate checks a wrong-data report against the card record at time now.
func (r *WrongDataReport) Validate(card *Card, now time.Time) []Reject {
	rs := checkChannel(r.Channel, r.Operator)
	for _, f := range r.Fields {
		if !wrongDataFields[f] {
			rs = append(rs, Reject{CodeBadPayload, "Dato segnalato non valido."})
			break
		}
	}
	if card == nil {
		return append(rs, Reject{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.CF != r.Card.CF || card.Expiry != r.Card.Expiry {
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.State == CardRevoked {
		rs = append(rs, Reject{CodeCardRevoked, "La tessera è revocata."})
	}
	return rs
}

// Refusal returns the refusal of an operation kind the CMS no longer
// allows (suspension, reactivation), or nil.
func Refusal(kind string) []Reject {
	switch kind {
	case KindSuspension:
		return []Reject{{CodeNoSuspension, "Le CNS non possono più essere sospese. In caso di furto, smarrimento o malfunzionamento si può chiedere la revoca."}}
	case KindReactivation:
		return []Reject{{CodeNoReactivation, "Le CNS non possono più essere riattivate. Per una tessera revocata si chiede una nuova tessera."}}
	}
	return nil
}

// checkCard checks the card a request names against the record. ok is
// false when there is no record to check further.
func checkCard(ref CardRef, card *Card, now time.Time) (rs []Reject, ok bool) {
	if card == nil {
		return []Reject{{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."}}, false
	}
	if card.CF != ref.CF || card.Expiry != ref.Expiry {
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.State == CardRevoked {
		rs = append(rs, Reject{CodeCardRevoked, "La tessera è revocata."})
	}
	return append(rs, checkExpiry(card, now)...), true
}

func checkExpiry(card *Card, now time.Time) []Reject {
	if exp, err := time.Parse(time.DateOnly, card.Expiry); err != nil || !now.Before(exp.AddDate(0, 0, 1)) {
		return []Reject{{CodeCardExpired, "La tessera è scaduta."}}
	}
	return nil
}

// checkActiveCardRequest checks what a request that needs an active card
// has in common (reprint, reader): its attendance (channel, operator, the
// document at a counter), the card against its record and its state. ok is
// false when the card itself fails, so no check on its record may follow.
func checkActiveCardRequest(a *Attendance, ref CardRef, card *Card, now time.Time) (rs []Reject, ok bool) {
	rs = a.check(now)
	crs, ok := checkCard(ref, card, now)
	rs = append(rs, crs...)
	if !ok {
		return rs, false
	}
	return append(rs, checkNotActive(card)...), true
}

// checkNotActive refuses an issued card (a revoked one is refused by
// checkCard).
func checkNotActive(card *Card) []Reject {
	if card.State == CardIssued {
		return []Reject{{CodeCardNotActive, "La tessera non è ancora attiva: l'attivazione si fa allo sportello."}}
	}
	return nil
}

func checkChannel(channel, operator string) []Reject {
	switch channel {
	case SelfService:
		if operator != "" {
			return []Reject{{CodeOperator, "Operazione self-service con una carta operatore: non valida."}}
		}
	case Assisted:
		if !OperatorSerial(operator) {
			return []Reject{{CodeOperator, "Serve la carta operatore (livello 8 o 9)."}}
		}
	default:
		return []Reject{{CodeBadPayload, "Canale non valido."}}
	}
	return nil
}

// checkAssistedOnly checks the channel of an operation made only at a
// counter: refused self-service with why (msg), else the operator's card.
func checkAssistedOnly(channel, operator, msg string) []Reject {
	if channel != Assisted {
		return []Reject{{CodeAssistedOnly, msg}}
	}
	return checkChannel(channel, operator)
}

func checkAssistedDocument(channel string, d *IDDocument, now time.Time) []Reject {
	if channel != Assisted {
		return nil
	}
	if d == nil {
		return []Reject{{CodeDocument, "L'operatore deve verificare un documento di identità."}}
	}
	return d.check(now)
}

func checkReason(reason string) []Reject {
	switch reason {
	case ReasonTheft, ReasonLoss, ReasonMalfunction:
		return nil
	}
	return []Reject{{CodeReason, "Indicare il motivo: furto, smarrimento o malfunzionamento."}}
}

func (d *Delegation) check(card *Card, now time.Time) []Reject {
	var rs []Reject
	switch d.Kind {
	case DelegParental, DelegTutor, DelegCurator:
	default:
		rs = append(rs, Reject{CodeDelegation, "Tipo di delega non valido: potestà parentale, tutore o curatore."})
	}
	if len(strings.TrimSpace(d.Name)) < 2 {
		rs = append(rs, Reject{CodeDelegation, "Indicare nome e cognome del delegato."})
	}
	switch {
	case !ValidCF(d.CF):
		rs = append(rs, Reject{CodeDelegation, "Codice fiscale del delegato non valido."})
	case d.CF == card.CF:
		rs = append(rs, Reject{CodeDelegation, "Il delegato non può essere il titolare della tessera."})
	}
	if d.Kind == DelegParental {
		if born, err := time.Parse(time.DateOnly, card.BirthDate); err == nil && !now.Before(born.AddDate(18, 0, 0)) {
			rs = append(rs, Reject{CodeDelegation, "La potestà parentale vale solo per i minorenni."})
		}
	}
	return rs
}

var docTypes = map[string]bool{DocIdentityCard: true, DocCIE: true, DocLicence: true, DocPassport: true}

func (d *IDDocument) check(now time.Time) []Reject {
	var rs []Reject
	if !docTypes[d.Type] {
		rs = append(rs, Reject{CodeDocument, "Tipo di documento di identità non valido."})
	}
	if strings.TrimSpace(d.Number) == "" || strings.TrimSpace(d.Issuer) == "" {
		rs = append(rs, Reject{CodeDocument, "Indicare numero ed ente di rilascio del documento."})
	}
	if exp, err := time.Parse(time.DateOnly, d.Expiry); err != nil {
		rs = append(rs, Reject{CodeDocument, "Indicare la scadenza del documento."})
	} else if !now.Before(exp.AddDate(0, 0, 1)) {
		rs = append(rs, Reject{CodeDocument, "Il documento di identità è scaduto."})
	}
	if !d.Checked {
		rs = append(rs, Reject{CodeDocument, "L'operatore deve confermare la verifica del documento."})
	}
	return rs
}

func (c *Contact) check() []Reject {
	switch c.Channel {
	case ContactSMS:
		n := strings.TrimPrefix(c.Address, "+")
		if !digits(n, len(n)) || len(n) < 9 || len(n) > 15 {
			return []Reject{{CodeContact, "Numero di cellulare non valido."}}
		}
	case ContactEmail:
		a, err := mail.ParseAddress(c.Address)
		if err != nil || a.Address != c.Address || a.Name != "" ||
			!strings.Contains(c.Address[strings.LastIndexByte(c.Address, '@'):], ".") {
			return []Reject{{CodeContact, "Indirizzo e-mail non valido."}}
		}
	default:
		return []Reject{{CodeContact, "Scegliere SMS o e-mail per la seconda parte di PIN e PUK."}}
	}
	return nil
}

var paymentRefChars = asciiset.Of("0-9A-Za-z/-")

func (p *Payment) check() []Reject {
	var rs []Reject
	if !paymentRefChars.Valid(p.Reference, 6, 40) {
		rs = append(rs, Reject{CodePayment, "Riferimento della ricevuta di pagamento mancante o non valido."})
	}
	if p.AmountCents != ReaderFeeCents {
		rs = append(rs, Reject{CodePayment, "Il lettore costa 4,20 €: l'importo pagato non corrisponde."})
	}
	return rs
}

// ConsentResult is the Data of an accepted consent: what became of the
// request to create the FSE that follows it.
type ConsentResult struct {
	FSE string `json:"fse"` // FSECreated, FSEPending, FSETicket
	// Ticket is the helpdesk ticket opened for the FSE (FSETicket):
	// level 1, the CF is wrong or missing and the citizen will be
	// contacted; level 2, technical errors after Attempts attempts.
	Ticket      string `json:"ticket,omitempty"`
	TicketLevel int    `json:"ticket_level,omitempty"`
	Attempts    int    `json:"attempts,omitempty"`
	// Retries and RetryEvery (seconds) are how the CMS retries a
	// creation that met a technical error, before a level-2 ticket.
	Retries    int `json:"retries,omitempty"`
	RetryEvery int `json:"retry_every_s,omitempty"`
}
