// Package cmsstore is the storage interface the reference CMS's rules
// (cms/refcms) run against, and the records they keep. Two stores
// implement it: bbolt (refcms.Open, the embedded default) and PostgreSQL
// (cms/pgstore, shared by several hub processes). The rules are written
// once, in refcms: they read and write the CMS's records only through a
// Tx or a Reader, typed (cards, consents, history…), never buckets or
// SQL, and never see which store runs them.
//
// What differs between the stores is below this interface: the
// exactly-once frame (ApplyBatch: dedup per (totem, op id), the
// per-totem sequence, protocol numbers, the operation's record, its
// audit record, all in the transaction of the rules' effect), the send
// log and how records are laid out.
package cmsstore

import (
	"context"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
)

// Store runs the exactly-once frame around the rules and keeps the CMS's
// records.
type Store interface {
	// ApplyBatch applies ops in order in one transaction, exactly once
	// per (totem, op id) and in sequence per totem: an id the totem
	// applied at that sequence number is answered Duplicate with the
	// stored outcome; a gap is OutOfOrder with Expect and writes
	// nothing; a number already taken, or the next one under an id the
	// totem used, is refused SEQ_REUSED (the latter consumed). Every
	// other operation gets a number (Series) and effect runs the rules
	// of it inside the transaction; its record, its audit record and
	// the ledger are written with it. An error from effect aborts the
	// whole batch. Ops with a zero Received get the time of the call.
	ApplyBatch(ctx context.Context, ops []cms.Op, effect Effect) ([]cms.Outcome, error)
	// View reads the records in one consistent snapshot.
	View(ctx context.Context, fn func(Reader) error) error
	// Update reads and writes the records in one transaction, outside
	// the frame (seeding, the FSE retries): the writes are all or none.
	Update(ctx context.Context, fn func(Tx) error) error
	// LogRefused records transmissions the hub refused without applying
	// them (sequence gaps) in the send log, a repeat as a count.
	LogRefused(ctx context.Context, ts []cms.Transmission) error
	// SendLog lists the send log newest first, a page at a time (f.Max
	// already bounded by the caller); next is the N to ask Before for the
	// next page, 0 at the end.
	SendLog(ctx context.Context, f cms.SendLogFilter) (page []cms.Transmission, next uint64, err error)
	// Transmission returns send log entry n with its errors;
	// cms.ErrNotFound when there is none.
	Transmission(ctx context.Context, n uint64) (cms.Transmission, error)
	// Ledger returns the last sequence number applied for totem and the
	// stored outcomes of its operations with Seq in [from, from+max),
	// in order.
	Ledger(ctx context.Context, totem string, from uint64, max int) (uint64, []cms.LedgerEntry, error)
	// Writable reports whether the store takes a write now.
	Writable(ctx context.Context) error
	Close() error
}

// Effect is the rules of one operation: they read and write the CMS's
// records through tx only and say what they gave. Refusals are Rejects;
// an error aborts the batch (nothing written).
type Effect func(tx Tx, op cms.Op, protocol string) (Applied, error)

// Applied is what the rules of one operation gave: the card it
// concerned, who drove it, the refusals, and the Data of an accepted
// online operation (marshalled into the outcome by the frame).
type Applied struct {
	Serial   string
	Channel  string
	Operator string
	Rejects  []cms.Reject
	Data     any
	Ref      string // a variation's original op id
}

// Series is the register an operation of kind is numbered in, and the
// prefix of its number: a query (the Storico) asks for nothing to be
// registered, so it gets a reference of its own series, "C" and the same
// digits, and spends no protocol number (issue 17).
func Series(kind string) (register, prefix string) {
	if kind == cms.KindHistory {
		return "queries", "C"
	}
	return "protocol", ""
}

// Number formats the n-th number of the series prefix for an operation
// received at: YYMMDD (UTC) and nine digits (more past a billion).
func Number(prefix string, at time.Time, n uint64) string {
	return fmt.Sprintf("%s%s%09d", prefix, at.UTC().Format("060102"), n)
}

// Reader is the CMS's records as the rules read them. A record not
// there is nil (or false), not an error.
type Reader interface {
	Card(serial string) (*cms.Card, error)
	// CardByTEAM finds the card whose serial has the TEAM code team.
	CardByTEAM(team string) (*cms.Card, error)
	// CardsOf returns the cards of the holder cf.
	CardsOf(cf string) ([]cms.Card, error)
	// Consent is the consent record in force for the card serial.
	Consent(serial string) (*ConsentRecord, error)
	// PreviousConsent is the record the one in force replaced.
	PreviousConsent(serial string) (*ConsentRecord, error)
	// ConsentOf finds the card whose record in force the operation opID
	// with protocol number protocol wrote.
	ConsentOf(opID, protocol string) (serial string, rec *ConsentRecord, err error)
	History(serial string) ([]cms.HistoryEvent, error)
	// Notifications are those of the card serial ("" = all), oldest first.
	Notifications(serial string) ([]Notification, error)
	Payment(ref string) (*PaymentRecord, error)
	// PaymentOf finds the payment the operation opID with protocol
	// number protocol recorded, and its reference.
	PaymentOf(opID, protocol string) (ref string, rec *PaymentRecord, err error)
	Reissue(serial string) (*ReissueRecord, error)
	CIPFailures(serial string) (int, error)
	FSE(cf string) (*FSERecord, error)
	// PendingFSE are the FSE records in state cms.FSEPending.
	PendingFSE() ([]FSERecord, error)
	Tickets() ([]Ticket, error)
	Refund(totem, ref string) (*RefundRecord, error)
	// Op is the record of totem's applied operation id.
	Op(totem, id string) (OpRecord, bool, error)
	// Audit calls fn with every audit record, in order.
	Audit(fn func(AuditRecord) error) error
	LastSeq(totem string) (uint64, error)
	Meta(name string) ([]byte, error)
}

// Tx is the CMS's records inside a transaction: reads see the writes
// before them.
type Tx interface {
	Reader
	PutCard(c cms.Card) error
	// PushConsent makes rec the record in force for serial, the one it
	// replaces kept as the previous one (one level deep).
	PushConsent(serial string, rec ConsentRecord) error
	// PutConsent replaces the record in force, the previous one kept.
	PutConsent(serial string, rec ConsentRecord) error
	// RestoreConsent puts prev back in force (nil: no record) and
	// forgets the previous one.
	RestoreConsent(serial string, prev *ConsentRecord) error
	AppendHistory(serial string, e cms.HistoryEvent) error
	AppendNotification(n Notification) error
	PutPayment(ref string, rec PaymentRecord) error
	DeletePayment(ref string) error
	PutReissue(r ReissueRecord) error
	// SetCIPFailures sets the wrong CIPs in a row of serial (0 clears).
	SetCIPFailures(serial string, n int) error
	PutFSE(r FSERecord) error
	// NextTicket is the next helpdesk ticket number (1, 2, …).
	NextTicket() (uint64, error)
	PutTicket(n uint64, t Ticket) error
	PutRefund(totem, ref string, rec RefundRecord) error
	PutMeta(name string, v []byte) error
}

// OpRecord is what a store keeps per applied operation.
type OpRecord struct {
	Totem   string      `json:"totem"`
	Seq     uint64      `json:"seq"`
	Kind    string      `json:"kind"`
	Outcome cms.Outcome `json:"outcome"`
}

// ConsentRecord is the consent state of a card.
type ConsentRecord struct {
	Policy   string        `json:"policy"`
	Consents []cms.Consent `json:"consents"`
	Channel  string        `json:"channel"`
	Operator string        `json:"operator,omitempty"`
	// Delegate gave the consents for the holder (assisted).
	Delegate *cms.Delegation `json:"delegate,omitempty"`
	OpID     string          `json:"op_id"`
	Protocol string          `json:"protocol"`
	At       time.Time       `json:"at"`
	// VariedBy is the op id of the correction that changed these
	// consents, VariedProtocol its protocol number.
	VariedBy       string `json:"varied_by,omitempty"`
	VariedProtocol string `json:"varied_protocol,omitempty"`
	// Previous is the record this one replaced, for a cancellation
	// (refcms's Consents fills it in; stored apart).
	Previous *ConsentRecord `json:"previous,omitempty"`
}

// AuditRecord is one entry of the append-only audit trail. It holds codes,
// never personal data beyond the card serial.
type AuditRecord struct {
	// N is the record's number in the send log's order (not stored in
	// the record itself).
	N        uint64    `json:"-"`
	At       time.Time `json:"at"`
	Totem    string    `json:"totem"`
	Seq      uint64    `json:"seq"`
	OpID     string    `json:"op_id"`
	Kind     string    `json:"kind"`
	Serial   string    `json:"serial,omitempty"`
	Channel  string    `json:"channel,omitempty"`
	Operator string    `json:"operator,omitempty"` // operator card serial, assisted only
	Protocol string    `json:"protocol"`
	Accepted bool      `json:"accepted"`
	Codes    []string  `json:"codes,omitempty"`
	// Stamp is the totem's clocks when it made the operation durable.
	Stamp *cms.Stamp `json:"stamp,omitempty"`
	// Ref is, for a correction or cancellation, the original's op id.
	Ref string `json:"ref,omitempty"`
}

// Notification is a message the CMS would send to a holder's contact: the
// reference CMS records it in its sink instead of sending it.
type Notification struct {
	At            time.Time `json:"at"`
	Serial        string    `json:"serial"`
	Kind          string    `json:"kind"` // cms.KindActivation or cms.KindReprint
	Channel       string    `json:"channel"`
	To            string    `json:"to"`
	PINSecondHalf string    `json:"pin_second_half"`
	PUKSecondHalf string    `json:"puk_second_half"`
	Text          string    `json:"text"`
	OpID          string    `json:"op_id"`
	Protocol      string    `json:"protocol"`
}

// PaymentRecord is what the store keeps of a reader payment: a receipt
// buys one reader.
type PaymentRecord struct {
	Serial   string    `json:"serial"`
	OpID     string    `json:"op_id"`
	Protocol string    `json:"protocol"`
	At       time.Time `json:"at"`
	// VariedBy is the op id of the correction that set this reference,
	// VariedProtocol its protocol number.
	VariedBy       string `json:"varied_by,omitempty"`
	VariedProtocol string `json:"varied_protocol,omitempty"`
}

// ReissueRecord is a request for a new card, made with a revocation or on
// its own at an enabled counter.
type ReissueRecord struct {
	ID     string    `json:"id"` // the protocol number of the operation
	Serial string    `json:"serial"`
	Source string    `json:"source"` // cms.KindRevocation or cms.KindReissue
	Reason string    `json:"reason"`
	OpID   string    `json:"op_id"`
	At     time.Time `json:"at"`
}

// FSERecord is the state of the creation of one citizen's FSE.
type FSERecord struct {
	CF        string    `json:"cf"`
	Serial    string    `json:"serial"`
	State     string    `json:"state"` // cms.FSECreated, cms.FSEPending, cms.FSETicket
	Attempts  int       `json:"attempts"`
	Ticket    string    `json:"ticket,omitempty"`
	Level     int       `json:"level,omitempty"` // the ticket's
	OpID      string    `json:"op_id"`
	Protocol  string    `json:"protocol"`
	Requested time.Time `json:"requested"`
	Updated   time.Time `json:"updated"`
}

// Ticket is a helpdesk ticket opened by the FSE creation rule.
type Ticket struct {
	ID       string    `json:"id"` // HD1-000001, HD2-000002
	Level    int       `json:"level"`
	Reason   string    `json:"reason"`
	CF       string    `json:"cf"`
	Serial   string    `json:"serial"`
	OpID     string    `json:"op_id"`
	Protocol string    `json:"protocol"`
	Attempts int       `json:"attempts"`
	Opened   time.Time `json:"opened"`
	Note     string    `json:"note"` // what the helpdesk is to do, in Italian
}

// RefundRecord is a cancelled reader request whose fee can be refunded:
// written by the cancellation, completed by the refund (once).
type RefundRecord struct {
	Serial      string    `json:"serial"`
	Payment     string    `json:"payment"`      // the payment receipt the request used
	Cancelled   string    `json:"cancelled"`    // the cancellation's protocol number
	CancelledBy string    `json:"cancelled_by"` // its op id
	At          time.Time `json:"at"`
	// RefundedBy is the refund's op id, RefundProtocol its protocol
	// number; empty until the fee is refunded.
	RefundedBy     string    `json:"refunded_by,omitempty"`
	RefundProtocol string    `json:"refund_protocol,omitempty"`
	RefundedAt     time.Time `json:"refunded_at,omitzero"`
}

// Transmission is the send log entry of op with outcome out.
func Transmission(op cms.Op, out cms.Outcome) cms.Transmission {
	t := cms.Transmission{At: op.Received, Totem: op.Totem, Seq: op.Seq, OpID: op.ID, Kind: op.Kind,
		Stamp: op.Stamp, Transport: cms.TxReceived, Protocol: out.Protocol, Processing: cms.TxAccepted,
		Duplicate: out.Duplicate}
	if !out.Accepted {
		t.Processing = cms.TxRejected
	}
	for _, r := range out.Rejects {
		t.Codes = append(t.Codes, r.Code)
	}
	return t
}

// FromAudit is the send log entry of audit record a.
func FromAudit(a AuditRecord) cms.Transmission {
	t := cms.Transmission{N: a.N, At: a.At, Totem: a.Totem, Seq: a.Seq, OpID: a.OpID, Kind: a.Kind, Stamp: a.Stamp,
		Ref: a.Ref, Transport: cms.TxReceived, Protocol: a.Protocol, Processing: cms.TxAccepted, Codes: a.Codes}
	if !a.Accepted {
		t.Processing = cms.TxRejected
	}
	return t
}

// Matches reports whether send log entry t passes filter f.
func Matches(f *cms.SendLogFilter, t *cms.Transmission) bool {
	switch {
	case f.Totem != "" && t.Totem != f.Totem,
		!f.From.IsZero() && t.At.Before(f.From),
		!f.To.IsZero() && !t.At.Before(f.To):
		return false
	}
	switch f.Outcome {
	case cms.SendAccepted:
		return t.Processing == cms.TxAccepted && !t.Duplicate
	case cms.SendRejected:
		return t.Processing == cms.TxRejected && !t.Duplicate
	case cms.SendRefused:
		return t.Transport == cms.TxRefused
	case cms.SendDuplicate:
		return t.Duplicate
	}
	return true
}

// ErrSeqReused is the refusal of an operation whose id or sequence number
// is taken.
func ErrSeqReused() cms.Reject {
	return cms.Reject{Code: cms.CodeSeqReused, Message: "Operazione non valida."}
}

// Retention is a Store that applies the retentions of refcms (the send
// log's own entries, the citizen's data), a small transaction at a time
// so that the ingest never waits long.
type Retention interface {
	// PruneSendLog deletes a batch of the send log's own entries (never
	// the audit) from cursor from on (0: the start): duplicates last
	// repeated before dupBefore, refusals before refBefore. next is
	// where the next batch starts, 0 when there is nothing more to see.
	PruneSendLog(ctx context.Context, dupBefore, refBefore time.Time, from uint64) (n int, next uint64, err error)
	// PurgeNotifications deletes a batch of the notifications made
	// before cutoff; more says whether older ones may remain.
	PurgeNotifications(ctx context.Context, cutoff time.Time) (n int, more bool, err error)
	// PurgeResults removes the Data of a batch of the stored outcomes of
	// operations applied before cutoff, from cursor from on (empty: the
	// start); next is where to go on, nil at the end.
	PurgeResults(ctx context.Context, cutoff time.Time, from []byte) (n int, next []byte, err error)
}

// FillErrors sets the error messages of t, a send log entry, when the
// hub received it: the refusals of the outcome stored for the operation
// it applied, or SEQ_REUSED for a number its id consumed. Never the Data
// an online operation returned: it may hold PIN halves.
func FillErrors(r Reader, t *cms.Transmission) error {
	if t.Transport != cms.TxReceived {
		return nil
	}
	rec, found, err := r.Op(t.Totem, t.OpID)
	if err != nil {
		return err
	}
	if found && rec.Seq == t.Seq {
		t.Errors = rec.Outcome.Rejects
		return nil
	}
	for _, c := range t.Codes {
		if c == cms.CodeSeqReused {
			t.Errors = append(t.Errors, ErrSeqReused())
		}
	}
	return nil
}
