// Package cms is the card-management domain the hub applies operations to:
// cards and their states, the FSE consent policies, the operations a totem
// sends with their validation rules, and the Backend interface the hub
// calls. The reference Backend lives in cms/refcms; an adapter to the real
// central system would implement the same interface.
package cms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CardState is the lifecycle state of a card in the CMS.
type CardState string

// Card states.
const (
	CardIssued  CardState = "issued"  // produced, not activated
	CardActive  CardState = "active"  // activated at a counter
	CardRevoked CardState = "revoked" // revoked: no operation is allowed
)

// Card is a TS-CNS card as the CMS knows it. A card is identified by codice
// fiscale, serial (from which the TEAM code derives, see TEAM) and expiry.
type Card struct {
	Serial string    `json:"serial"`
	CF     string    `json:"cf"`
	Expiry string    `json:"expiry"` // YYYY-MM-DD
	State  CardState `json:"state"`
	// Surname and Name are the holder's, as the CMS shows them to the
	// operator for the second identity check (KindLookup).
	Surname string `json:"surname,omitempty"`
	Name    string `json:"name,omitempty"`
	// BirthDate is the holder's (YYYY-MM-DD), when known: it decides
	// whether potestà parentale applies.
	BirthDate string `json:"birth_date,omitempty"`
	// Contact receives the second halves of PIN and PUK; chosen at
	// activation.
	Contact *Contact `json:"contact,omitempty"`
	// Readers counts the card readers bought for this card.
	Readers int `json:"readers,omitempty"`
	// Delegations are those who acted for the holder at activation.
	Delegations  []Delegation `json:"delegations,omitempty"`
	ActivatedAt  time.Time    `json:"activated_at,omitzero"`
	RevokedAt    time.Time    `json:"revoked_at,omitzero"`
	RevokeReason string       `json:"revoke_reason,omitempty"`
	// DataReported is set by a "dati errati" report: the holder's personal
	// data are wrong and the card is to be replaced by the sportello Scelta
	// e Revoca; it is not activated meanwhile.
	DataReported bool `json:"data_reported,omitempty"`
}

// CardRef identifies a card in an operation, as the chip gives it.
type CardRef struct {
	Serial string `json:"serial"`
	CF     string `json:"cf"`
	Expiry string `json:"expiry"` // YYYY-MM-DD
}

// Channel says who drove an operation.
const (
	SelfService = "self"     // the citizen, with card and PIN
	Assisted    = "assisted" // an ASL operator with an operator card
)

// ConsentDef is one consent of a policy.
type ConsentDef struct {
	Code  string `json:"code"`
	Label string `json:"label"` // Italian, as shown to the citizen
}

// Policy is a set of consents the CMS collects. The hub publishes it to
// the totems as it is (protocol.Policy embeds it).
type Policy struct {
	ID       string       `json:"id"`
	Consents []ConsentDef `json:"consents"`
}

// The consent policies. Policy2016 has the three consents of the seeds'
// procedures; Policy2020 is the set in force since May 2020, when the
// consent to feed the FSE was abolished.
var (
	Policy2016 = Policy{ID: "fse-2016", Consents: []ConsentDef{
		{Code: "alimentazione", Label: "Consenso all'alimentazione del Fascicolo"},
		{Code: "consultazione", Label: "Consenso alla consultazione del Fascicolo"},
		{Code: "pregresso", Label: "Consenso al recupero dei documenti pregressi"},
	}}
	Policy2020 = Policy{ID: "fse-2020", Consents: []ConsentDef{
		{Code: "consultazione", Label: "Consenso alla consultazione del Fascicolo"},
		{Code: "opposizione_pregresso", Label: "Opposizione ai documenti anteriori al 19/05/2020"},
	}}
)

// PolicyByID returns the named policy.
func PolicyByID(id string) (Policy, bool) {
	for _, p := range []Policy{Policy2016, Policy2020} {
		if p.ID == id {
			return p, true
		}
	}
	return Policy{}, false
}

// Consent is one consent given or withheld.
type Consent struct {
	Code  string `json:"code"`
	Given bool   `json:"given"`
}

// ConsentRequest is the payload of a KindConsent operation.
type ConsentRequest struct {
	Card     CardRef   `json:"card"`
	Policy   string    `json:"policy"`
	Consents []Consent `json:"consents"`
	Attendance
	// Delegate gives the consents for the holder (seed 001: potestà
	// parentale, tutore, curatore), assisted only, with the
	// dichiarazione sostitutiva printed, signed and kept (Declaration).
	Delegate    *Delegation `json:"delegate,omitempty"`
	Declaration bool        `json:"declaration,omitempty"`
}

// Op is an operation as the hub hands it to the Backend.
type Op struct {
	ID       string
	Totem    string
	Seq      uint64
	Kind     string
	Payload  json.RawMessage
	Created  time.Time // the totem's clock: data only
	Expires  time.Time
	Received time.Time // the hub's clock
	Stamp    *Stamp    // the totem's clocks at enqueue, when it sent them
	// Counter is the hub's word, from its fleet registry, that the totem
	// stands at an ASL counter enabled to reissue cards: a totem's own
	// claim is never trusted.
	Counter bool
}

// Error codes of rejected operations.
const (
	CodeBadPayload   = "BAD_PAYLOAD"
	CodeUnknownKind  = "UNKNOWN_KIND"
	CodeCardUnknown  = "CARD_UNKNOWN"
	CodeCardMismatch = "CARD_MISMATCH"
	CodeCardRevoked  = "CARD_REVOKED"
	CodeCardExpired  = "CARD_EXPIRED"
	CodePolicy       = "POLICY_MISMATCH"
	CodeExpired      = "OP_EXPIRED"
	CodeSeqReused    = "SEQ_REUSED"
	CodeVoid         = "OP_VOID" // a void: the totem could not send the operation of this sequence

	CodeAssistedOnly     = "ASSISTED_ONLY"    // needs an operator at a counter
	CodeOperator         = "OPERATOR_INVALID" // operator card missing, not level 8/9, or on a self-service op
	CodeCardNotActive    = "CARD_NOT_ACTIVE"  // issued, never activated
	CodeAlreadyActive    = "CARD_ALREADY_ACTIVE"
	CodeDelegation       = "DELEGATION_INVALID" // delegate kind, name, CF, or the holder's age
	CodeDeclaration      = "DECLARATION_MISSING"
	CodeDocument         = "DOCUMENT_INVALID"
	CodeContact          = "CONTACT_INVALID" // second-half channel or address, or none on record
	CodePrivacy          = "PRIVACY_MISSING"
	CodeReason           = "REASON_INVALID"
	CodeTEAM             = "TEAM_INVALID"
	CodeCIPWrong         = "CIP_WRONG"
	CodeCIPBlocked       = "CIP_BLOCKED"
	CodePayment          = "PAYMENT_INVALID"
	CodePaymentReused    = "PAYMENT_REUSED"
	CodePINData          = "PIN_DATA" // an audit event carrying something like a PIN
	CodeNoSuspension     = "SUSPENSION_NOT_ALLOWED"
	CodeNoReactivation   = "REACTIVATION_NOT_ALLOWED"
	CodeReissueCounter   = "REISSUE_NOT_ENABLED"
	CodeReissueRequester = "REISSUE_REQUESTER"
	CodeReissuePending   = "REISSUE_PENDING"
	CodeDataReported     = "DATA_REPORTED" // personal data reported wrong: sportello Scelta e Revoca
)

// Reject is a coded refusal. Message is Italian, fit for the citizen.
type Reject struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r *Reject) Error() string { return "cms: rejected: " + r.Code }

// Outcome is what applying an operation gave.
type Outcome struct {
	// Protocol is the protocol number assigned when the operation was
	// received in sequence (accepted or rejected).
	Protocol string
	Accepted bool
	Rejects  []Reject
	// Duplicate is set when the operation had been applied before: the
	// stored outcome is returned and nothing changes.
	Duplicate bool
	// OutOfOrder is set when earlier operations of the same totem are
	// missing; Expect is the sequence number to send next. Nothing changed.
	OutOfOrder bool
	Expect     uint64
	At         time.Time
	// Data is what an accepted online operation returns to the totem
	// (a JSON object), stored with the outcome so a duplicate gets it too.
	Data json.RawMessage `json:",omitempty"`
}

// Backend is the CMS as the hub sees it.
type Backend interface {
	// Apply applies op exactly once and in sequence per totem: called
	// again with an applied op id it returns the stored outcome with
	// Duplicate set; with a sequence gap it returns OutOfOrder and
	// applies nothing. Rule violations are Outcomes with Rejects, not
	// errors; an error means the backend could not decide (retry later).
	Apply(ctx context.Context, op Op) (Outcome, error)
	// Policy returns the consent policy in force.
	Policy(ctx context.Context) (Policy, error)
}

// BatchBackend is an optional capability of a Backend: applying many
// operations at once (one commit), in order, with the same result as
// applying them one by one.
type BatchBackend interface {
	ApplyBatch(ctx context.Context, ops []Op) ([]Outcome, error)
}

// Outcomes a report can select.
const (
	ReportAccepted = "accepted"
	ReportRejected = "rejected"
)

// ReportFilter selects audit records for a report (Reportistica). Empty
// fields select all.
type ReportFilter struct {
	Totem    string    `json:"totem,omitempty"`
	Operator string    `json:"operator,omitempty"` // operator card serial
	Kind     string    `json:"kind,omitempty"`
	Outcome  string    `json:"outcome,omitempty"` // "", ReportAccepted or ReportRejected
	From     time.Time `json:"from,omitzero"`     // on the hub's clock, inclusive; zero: from the start
	To       time.Time `json:"to,omitzero"`       // exclusive; zero: up to now
	ByDay    bool      `json:"by_day,omitempty"`  // one row per day (UTC) too
}

// ReportRow counts the operations of one totem, operator and kind (and day,
// with ByDay).
type ReportRow struct {
	Day      string         `json:"day,omitempty"` // YYYY-MM-DD
	Totem    string         `json:"totem"`
	Operator string         `json:"operator,omitempty"`
	Kind     string         `json:"kind"`
	Accepted int            `json:"accepted"`
	Rejected int            `json:"rejected"`
	Codes    map[string]int `json:"codes,omitempty"` // reject codes of the rejected ones
}

// Reporter is an optional capability of a Backend: aggregating what was
// applied, for the Reportistica.
type Reporter interface {
	Report(ReportFilter) ([]ReportRow, error)
}

// ErrNotFound is returned by lookups of unknown records.
var ErrNotFound = errors.New("cms: not found")

// Validate checks a consent request against policy and the card record at
// time now. It returns nil or the refusals, Italian messages included.
func (r *ConsentRequest) Validate(p Policy, card *Card, now time.Time) []Reject {
	rs, ok := checkCard(r.Card, card, now)
	if !ok {
		return rs
	}
	rs = append(rs, checkNotActive(card)...)
	if pr := checkConsents(p, r.Policy, r.Consents); pr != nil {
		return append(rs, pr...)
	}
	rs = append(rs, r.Attendance.check(now)...)
	return append(rs, checkDelegate(r.Channel, r.Delegate, r.Declaration, card, now)...)
}

// checkDelegate checks a delegate acting for the holder: only at a
// counter (self-service, the card's PIN proves the holder), one of the
// three kinds with name and CF (potestà parentale only for a minor), and
// the dichiarazione sostitutiva signed.
func checkDelegate(channel string, d *Delegation, declaration bool, card *Card, now time.Time) []Reject {
	if d == nil {
		return nil
	}
	var rs []Reject
	if channel != Assisted {
		rs = append(rs, Reject{CodeDelegation, "Chi agisce per il titolare si presenta allo sportello, con un operatore."})
	}
	rs = append(rs, d.check(card, now)...)
	if !declaration {
		rs = append(rs, Reject{CodeDeclaration, "Stampare la dichiarazione sostitutiva, farla firmare e conservarla."})
	}
	return rs
}

func checkConsents(p Policy, id string, cs []Consent) []Reject {
	bad := []Reject{{CodePolicy, fmt.Sprintf("Consensi non conformi alla politica %s.", p.ID)}}
	if id != p.ID || len(cs) != len(p.Consents) {
		return bad
	}
	for i, c := range cs {
		if c.Code != p.Consents[i].Code {
			return bad
		}
	}
	return nil
}

// DemoCIP is the CIP of every demo card (the README gives it: Revoca
// self-service asks for it); a real card's derives from the CMS's secret.
const DemoCIP = "24681357"

// DemoCIPs fixes DemoCIP for every demo card (refcms.Options.CIPs).
func DemoCIPs() map[string]string {
	m := map[string]string{}
	for _, c := range DemoCards() {
		m[c.Serial] = DemoCIP
	}
	return m
}

// DemoConsent is a consent on the first demo card, self-service: the
// operation the benchmarks and the tests queue.
func DemoConsent() ConsentRequest {
	return ConsentRequest{
		Card:       CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
		Policy:     "fse-2020",
		Consents:   []Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso"}},
		Attendance: Attendance{Channel: SelfService},
	}
}

// DemoCards are the cards the reference CMS knows in the demo; the
// simulated reader's cards in hal/sim match them. The first is active, the
// second revoked; the last two are issued and wait for activation (a minor
// and an adult).
func DemoCards() []Card {
	return []Card{
		{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31", State: CardActive, Surname: "ROSSI", Name: "MARIO",
			BirthDate: "1980-01-01", Contact: &Contact{Channel: ContactSMS, Address: "+393330000001"}},
		{Serial: "6090098765432002", CF: "BNCLRA75D45F205C", Expiry: "2029-06-30", State: CardRevoked, Surname: "BIANCHI", Name: "LAURA"},
		{Serial: "6090011111111006", CF: "VRDLCU15C10H501Y", Expiry: "2031-03-31", State: CardIssued, BirthDate: "2015-03-10",
			Surname: "VERDI", Name: "LUCA"},
		{Serial: "6090022222222004", CF: "VRDNNA70M50F205B", Expiry: "2032-08-31", State: CardIssued, BirthDate: "1970-08-10",
			Surname: "VERDI", Name: "ANNA"},
	}
}
