package cms

import (
	"encoding/json"
	"time"

	"github.com/aslcns/totem/cms/opkind"
)

// Kinds of the technician's variations of an operation already sent (seed
// 003: "Aggiorna" and "Cancella"). Each is a new operation of its own, in
// sequence, with both outcomes; it references the original, which is
// never erased: the audit shows both.
const (
	KindCorrection   = opkind.Correction   // CorrectionRequest: the original's effect, with corrected data
	KindCancellation = opkind.Cancellation // CancellationRequest: the original's effect reverted
)

// Error codes of variations.
const (
	CodeRefUnknown       = "REF_UNKNOWN"      // no such original, or it is another totem's
	CodeNotCorrectable   = "NOT_CORRECTABLE"  // the original's kind cannot be corrected
	CodeNotCancellable   = "NOT_CANCELLABLE"  // the original's kind cannot be cancelled
	CodeNotAccepted      = "REF_NOT_ACCEPTED" // cancelling an original the CMS rejected: nothing to revert
	CodeSuperseded       = "REF_SUPERSEDED"   // a later operation changed the same data, or it was cancelled
	CodeCardChanged      = "REF_CARD_CHANGED" // a correction must concern the original's card
	CodeProtocolMismatch = "REF_PROTOCOL"     // the protocol number given is not the original's
)

// Correctable reports whether operations of kind can be corrected, as its
// declaration in cms/opkind says: the consents (a different choice) and
// the reader request (a mistyped payment reference). An activation, a
// revocation or a reprint has produced codes, letters or a new card: it
// cannot be redone on paper.
func Correctable(kind string) bool { k, _ := opkind.Lookup(kind); return k.Correctable }

// Cancellable reports whether the effect of an operation of kind can be
// reverted (cms/opkind): consents go back to the previous choice, a reader
// request gives back the counter and frees the payment reference.
func Cancellable(kind string) bool { k, _ := opkind.Lookup(kind); return k.Cancellable }

// CorrectionRequest is the payload of a KindCorrection operation. Payload
// is the corrected payload of the original's kind, checked with the same
// rules as the original.
type CorrectionRequest struct {
	Ref      string          `json:"ref"`                // the original's op id
	Protocol string          `json:"protocol,omitempty"` // the original's protocol number, when known
	Payload  json.RawMessage `json:"payload"`
}

// CancellationRequest is the payload of a KindCancellation operation.
type CancellationRequest struct {
	Ref      string `json:"ref"`
	Protocol string `json:"protocol,omitempty"`
	Reason   string `json:"reason,omitempty"` // free text for the audit, no personal data
}

// VariationResult is the Data of an accepted correction or cancellation.
type VariationResult struct {
	Ref      string `json:"ref"`
	Original string `json:"original"` // the original's protocol number
	Kind     string `json:"kind"`     // the original's kind
}

// RefusalOfVariation returns the refusal of a variation of an original of
// kind, or nil when the kind allows it.
func RefusalOfVariation(variation, kind string) []Reject {
	switch {
	case variation == KindCorrection && !Correctable(kind):
		return []Reject{{CodeNotCorrectable, "Questa operazione non si può correggere: rivolgersi allo sportello."}}
	case variation == KindCancellation && !Cancellable(kind):
		return []Reject{{CodeNotCancellable, "Questa operazione non si può annullare: rivolgersi allo sportello."}}
	}
	return nil
}

// Stamp says when, on a totem's clocks, something happened: here, when it
// made an operation durable. Order is never taken from it (sequence
// numbers order operations): the wall time is data, trustworthy only when
// Synced; Boot and Mono place the moment exactly within one boot of the
// board. The wire's protocol.Stamp is this type.
type Stamp struct {
	Boot   string    `json:"boot"`    // boot id: changes at every boot
	Mono   int64     `json:"mono_ms"` // milliseconds since boot, monotonic
	Wall   time.Time `json:"wall"`    // the wall clock then
	Synced bool      `json:"synced"`  // the wall clock was synchronised (NTP)
}

// Valid reports whether s is a plausible stamp.
func (s *Stamp) Valid() bool {
	return s.Boot != "" && len(s.Boot) <= 64 && s.Mono >= 0
}

// Transport outcomes of a Transmission.
const (
	TxReceived = "received" // the CMS has it (applied now or before)
	TxRefused  = "refused"  // not taken: sequence gap, or the backend could not decide
)

// Processing outcomes of a Transmission.
const (
	TxAccepted = "accepted"
	TxRejected = "rejected"
	TxPending  = "pending"
)

// Transmission is one entry of the hub's send log (elenco invii): every
// operation received, applied or not, with both outcomes.
type Transmission struct {
	N          uint64    `json:"n"`  // the send log number, in the hub's order of arrival
	At         time.Time `json:"at"` // received, hub clock
	Totem      string    `json:"totem"`
	Seq        uint64    `json:"seq"`
	OpID       string    `json:"op_id"`
	Kind       string    `json:"kind"`
	Stamp      *Stamp    `json:"stamp,omitempty"` // the totem's clocks at enqueue
	Ref        string    `json:"ref,omitempty"`   // a variation's original op id
	Transport  string    `json:"transport"`
	Protocol   string    `json:"protocol,omitempty"`
	Processing string    `json:"processing"`
	Codes      []string  `json:"codes,omitempty"`
	Errors     []Reject  `json:"errors,omitempty"` // Transmission (show) only
	Duplicate  bool      `json:"duplicate,omitempty"`
	Expect     uint64    `json:"expect,omitempty"` // a gap: the seq the hub expected
	// Repeats counts the same transmission (totem, op, seq and outcome)
	// received again after this one: a duplicate or a refusal repeated is
	// counted on its first entry, not logged again. Last is the latest.
	Repeats int       `json:"repeats,omitempty"`
	Last    time.Time `json:"last,omitzero"`
}

// Outcomes a send log listing can select.
const (
	SendAccepted  = "accepted"
	SendRejected  = "rejected"
	SendRefused   = "refused"
	SendDuplicate = "duplicate"
)

// SendLogFilter selects send log entries; empty fields select all.
type SendLogFilter struct {
	Totem   string    `json:"totem,omitempty"`
	Outcome string    `json:"outcome,omitempty"` // "", SendAccepted, SendRejected, SendRefused, SendDuplicate
	From    time.Time `json:"from,omitzero"`     // hub clock, inclusive
	To      time.Time `json:"to,omitzero"`       // exclusive
	Before  uint64    `json:"before,omitempty"`  // page: entries with N < Before; 0 = from the newest
	Max     int       `json:"max,omitempty"`     // default 50, at most 500
}

// LedgerEntry is the stored outcome of one applied operation of a totem.
type LedgerEntry struct {
	OpID    string
	Seq     uint64
	Kind    string
	Outcome Outcome
}

// SendLogger is an optional capability of a Backend: the send log and the
// per-totem record a resynchronisation compares with.
type SendLogger interface {
	// SendLog lists entries newest first; next is the Before of the next
	// page, 0 when there is none.
	SendLog(SendLogFilter) (rows []Transmission, next uint64, err error)
	// Transmission returns entry n with its error messages.
	Transmission(n uint64) (Transmission, error)
	// LogRefused records transmissions the hub refused without applying
	// (sequence gaps): a rare path with its own commit.
	LogRefused([]Transmission) error
	// Ledger returns the last sequence number applied for totem and the
	// stored outcomes of its applied operations with Seq from..from+max-1.
	Ledger(totem string, from uint64, max int) (last uint64, entries []LedgerEntry, err error)
}
