package refcms

import (
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
)

// applyRefund gives back the fee of a reader request of the same totem
// that was accepted and then cancelled, once.
func (s *rules) applyRefund(c *opCtx) (applied, error) {
	var req cms.RefundRequest
	if strictJSON(c.op.Payload, &req) != nil {
		return applied{rejects: badPayload()}, nil
	}
	a := applied{ref: req.Ref}
	if a.rejects = req.Check(); len(a.rejects) > 0 {
		return a, nil
	}
	orig, found, err := c.tx.Op(c.op.Totem, req.Ref)
	if err != nil || !found {
		// Another totem's reader request is unknown here, like a wrong id.
		a.rejects = []cms.Reject{{Code: cms.CodeRefUnknown, Message: "Operazione originale non trovata."}}
		return a, err
	}
	if req.Protocol != "" && req.Protocol != orig.Outcome.Protocol {
		a.rejects = []cms.Reject{{Code: cms.CodeProtocolMismatch, Message: "Il numero di protocollo non è quello dell'operazione originale."}}
		return a, nil
	}
	var rec RefundRecord
	have, err := c.tx.Refund(c.op.Totem, req.Ref)
	if err != nil {
		return a, err
	}
	if have != nil {
		rec = *have
		a.serial = rec.Serial
	}
	if a.rejects = cms.RefusalOfRefund(orig.Kind, orig.Outcome.Accepted, have != nil, rec.RefundedBy != ""); len(a.rejects) > 0 {
		return a, nil
	}
	rec.RefundedBy, rec.RefundProtocol, rec.RefundedAt = c.op.ID, c.protocol, c.now()
	if err := c.tx.PutRefund(c.op.Totem, req.Ref, rec); err != nil {
		return a, err
	}
	a.data = cms.RefundResult{Ref: req.Ref, Original: orig.Outcome.Protocol, Cancellation: rec.Cancelled,
		Payment: rec.Payment, AmountCents: req.AmountCents}
	return a, event(c, rec.Serial, cms.KindRefund, "", cms.KindReader)
}

// Refund returns the refund record of the reader request ref of totem.
func (s *Store) Refund(totem, ref string) (RefundRecord, bool, error) {
	rec, err := lookup(s, func(r cmsstore.Reader) (*RefundRecord, error) { return r.Refund(totem, ref) })
	if errors.Is(err, cms.ErrNotFound) {
		return RefundRecord{}, false, nil
	}
	return rec, err == nil, err
}
