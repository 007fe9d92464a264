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
// fiscale, serial (from which the TEAM code derives) and expiry.
type Card struct {
	Serial string    `json:"serial"`
	CF     string    `json:"cf"`
	Expiry string    `json:"expiry"` // YYYY-MM-DD
	State  CardState `json:"state"`
}

// CardRef identifies a card in an operation, as the chip gives it.
type CardRef struct {
	Serial string `json:"serial"`
	CF     string `json:"cf"`
	Expiry string `json:"expiry"` // YYYY-MM-DD
}

// Operation kinds.
const (
	KindConsent = "consent" // Consensi FSE
)

// Channel says who drove an operation.
const (
	SelfService = "self"     // the citizen, with card and PIN
	Assisted    = "assisted" // an ASL operator with an operator card
)

// ConsentDef is one consent of a policy.
type ConsentDef struct {
	Code  string
	Label string // Italian, as shown to the citizen
}

// Policy is a set of consents the CMS collects.
type Policy struct {
	ID       string
	Consents []ConsentDef
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
	Channel  string    `json:"channel"`
	Operator string    `json:"operator,omitempty"` // operator card serial, assisted only
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

// ErrNotFound is returned by lookups of unknown records.
var ErrNotFound = errors.New("cms: not found")

// Validate checks a consent request against policy and the card record at
// time now. It returns nil or the refusals, Italian messages included.
func (r *ConsentRequest) Validate(p Policy, card *Card, now time.Time) []Reject {
	var rs []Reject
	if card == nil {
		return []Reject{{CodeCardUnknown, "Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca."}}
	}
	if card.CF != r.Card.CF || card.Expiry != r.Card.Expiry {
		rs = append(rs, Reject{CodeCardMismatch, "I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca."})
	}
	if card.State == CardRevoked {
		rs = append(rs, Reject{CodeCardRevoked, "La tessera è revocata."})
	}
	if exp, err := time.Parse(time.DateOnly, card.Expiry); err != nil || !now.Before(exp.AddDate(0, 0, 1)) {
		rs = append(rs, Reject{CodeCardExpired, "La tessera è scaduta."})
	}
	if r.Policy != p.ID || len(r.Consents) != len(p.Consents) {
		return append(rs, Reject{CodePolicy, fmt.Sprintf("Consensi non conformi alla politica %s.", p.ID)})
	}
	for i, c := range r.Consents {
		if c.Code != p.Consents[i].Code {
			return append(rs, Reject{CodePolicy, fmt.Sprintf("Consensi non conformi alla politica %s.", p.ID)})
		}
	}
	if r.Channel != SelfService && r.Channel != Assisted {
		rs = append(rs, Reject{CodeBadPayload, "Canale non valido."})
	}
	return rs
}

// DemoCards are the cards the reference CMS knows in the demo; the
// simulated reader's cards in hal/sim match them.
func DemoCards() []Card {
	return []Card{
		{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31", State: CardActive},
		{Serial: "6090098765432002", CF: "BNCLRA75D45F205X", Expiry: "2029-06-30", State: CardRevoked},
	}
}
