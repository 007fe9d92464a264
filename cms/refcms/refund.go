package refcms

import (
	"time"

	"github.com/aslcns/totem/cms"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

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

// refundKey names a reader request: op ids are unique per totem.
func refundKey(totem, ref string) []byte { return append(append([]byte(totem), 0), ref...) }

// applyRefund gives back the fee of a reader request of the same totem
// that was accepted and then cancelled, once.
func (s *Store) applyRefund(c *opCtx) (applied, error) {
	var req cms.RefundRequest
	if strictJSON(c.op.Payload, &req) != nil {
		return applied{rejects: badPayload()}, nil
	}
	a := applied{ref: req.Ref}
	if a.rejects = req.Check(); len(a.rejects) > 0 {
		return a, nil
	}
	orig, found, err := getOp(c.tx, c.op.Totem, req.Ref)
	if err != nil || !found {
		// Another totem's reader request is unknown here, like a wrong id.
		a.rejects = []cms.Reject{{Code: cms.CodeRefUnknown, Message: "Operazione originale non trovata."}}
		return a, err
	}
	if req.Protocol != "" && req.Protocol != orig.Outcome.Protocol {
		a.rejects = []cms.Reject{{Code: cms.CodeProtocolMismatch, Message: "Il numero di protocollo non è quello dell'operazione originale."}}
		return a, nil
	}
	b := c.tx.Bucket(bRefunds)
	var rec RefundRecord
	v := b.Get(refundKey(c.op.Totem, req.Ref))
	if v != nil {
		if err := json.Unmarshal(v, &rec); err != nil {
			return a, err
		}
		a.serial = rec.Serial
	}
	if a.rejects = cms.RefusalOfRefund(orig.Kind, orig.Outcome.Accepted, v != nil, rec.RefundedBy != ""); len(a.rejects) > 0 {
		return a, nil
	}
	rec.RefundedBy, rec.RefundProtocol, rec.RefundedAt = c.op.ID, c.protocol, c.now()
	if err := putJSON(b, refundKey(c.op.Totem, req.Ref), rec); err != nil {
		return a, err
	}
	a.data = cms.RefundResult{Ref: req.Ref, Original: orig.Outcome.Protocol, Cancellation: rec.Cancelled,
		Payment: rec.Payment, AmountCents: req.AmountCents}
	return a, event(c, rec.Serial, cms.KindRefund, "", cms.KindReader)
}

// Refund returns the refund record of the reader request ref of totem.
func (s *Store) Refund(totem, ref string) (RefundRecord, bool, error) {
	var rec RefundRecord
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bRefunds).Get(refundKey(totem, ref))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	return rec, found, err
}
