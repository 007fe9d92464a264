package refcms

import (
	"strconv"

	"github.com/aslcns/totem/cms"
	json "github.com/segmentio/encoding/json"
)

// A variation (correction or cancellation) references an original of the
// same totem by op id. The original's records are never erased: the audit
// keeps both, the variation with Ref set; the consent and payment records
// say which variation changed them.

// variation is what a correction or cancellation names.
type variation struct {
	ref, protocol string
	payload       json.RawMessage // correction only
	reason        string          // cancellation only
	orig          opRecord
}

// original parses a variation and looks up its original. It returns
// refusals when the reference is unusable.
func (s *rules) original(c *opCtx) (variation, []cms.Reject, error) {
	var v variation
	switch c.op.Kind {
	case cms.KindCorrection:
		var req cms.CorrectionRequest
		if strictJSON(c.op.Payload, &req) != nil || len(req.Payload) == 0 || req.Payload[0] != '{' {
			return v, badPayload(), nil
		}
		v.ref, v.protocol, v.payload = req.Ref, req.Protocol, req.Payload
	default:
		var req cms.CancellationRequest
		if strictJSON(c.op.Payload, &req) != nil || len(req.Reason) > 200 {
			return v, badPayload(), nil
		}
		v.ref, v.protocol, v.reason = req.Ref, req.Protocol, req.Reason
	}
	orig, found, err := c.tx.Op(c.op.Totem, v.ref)
	if err != nil {
		return v, nil, err
	}
	if !found {
		return v, []cms.Reject{{Code: cms.CodeRefUnknown, Message: "Operazione originale non trovata."}}, nil
	}
	v.orig = orig
	if v.protocol != "" && v.protocol != v.orig.Outcome.Protocol {
		return v, []cms.Reject{{Code: cms.CodeProtocolMismatch, Message: "Il numero di protocollo non è quello dell'operazione originale."}}, nil
	}
	if rs := cms.RefusalOfVariation(c.op.Kind, v.orig.Kind); rs != nil {
		return v, rs, nil
	}
	if c.op.Kind == cms.KindCancellation && !v.orig.Outcome.Accepted {
		return v, []cms.Reject{{Code: cms.CodeNotAccepted, Message: "L'operazione originale era stata respinta: non c'è nulla da annullare."}}, nil
	}
	return v, nil, nil
}

func superseded() []cms.Reject {
	return []cms.Reject{{Code: cms.CodeSuperseded,
		Message: "L'operazione originale è già stata annullata o superata da una successiva."}}
}

func (s *rules) applyVariation(c *opCtx) (applied, error) {
	v, rs, err := s.original(c)
	if err != nil || rs != nil {
		a := lenient(v.payload)
		a.ref, a.rejects = v.ref, rs
		return a, err
	}
	var a applied
	switch {
	case c.op.Kind == cms.KindCorrection && !v.orig.Outcome.Accepted:
		// The original was refused: the correction is the operation done
		// right, applied with the original kind's rules.
		c2 := *c
		c2.op.Payload = v.payload
		if v.orig.Kind == cms.KindConsent {
			a, err = s.applyConsent(&c2)
		} else {
			a, err = s.applyReader(&c2)
		}
	case v.orig.Kind == cms.KindConsent && c.op.Kind == cms.KindCorrection:
		a, err = s.correctConsent(c, v)
	case v.orig.Kind == cms.KindConsent:
		a, err = s.cancelConsent(c, v)
	case c.op.Kind == cms.KindCorrection:
		a, err = s.correctReader(c, v)
	default:
		a, err = s.cancelReader(c, v)
	}
	a.ref = v.ref
	if err == nil && len(a.rejects) == 0 {
		a.data = cms.VariationResult{Ref: v.ref, Original: v.orig.Outcome.Protocol, Kind: v.orig.Kind}
	}
	return a, err
}

// correctConsent replaces the consents an accepted original recorded,
// if nothing changed them since; the record stays the original's.
func (s *rules) correctConsent(c *opCtx, v variation) (applied, error) {
	var req cms.ConsentRequest
	if strictJSON(v.payload, &req) != nil {
		return applied{rejects: badPayload()}, nil
	}
	a := applied{serial: req.Card.Serial, channel: req.Channel, operator: req.Operator}
	card, err := c.tx.Card(req.Card.Serial)
	if err != nil {
		return a, err
	}
	if a.rejects = req.Validate(s.policy, card, c.now()); len(a.rejects) > 0 {
		return a, nil
	}
	cur, err := c.tx.Consent(card.Serial)
	if err != nil {
		return a, err
	}
	if cur == nil || cur.OpID != v.ref || cur.Protocol != v.orig.Outcome.Protocol {
		// Another card than the original's, or a later consent.
		a.rejects = []cms.Reject{{Code: cms.CodeCardChanged,
			Message: "La correzione non riguarda i consensi registrati dall'operazione originale."}}
		if serial, _, err := c.tx.ConsentOf(v.ref, v.orig.Outcome.Protocol); err != nil || serial == "" {
			a.rejects = superseded()
			return a, err
		}
		return a, nil
	}
	cur.Policy, cur.Consents, cur.Channel, cur.Operator = req.Policy, req.Consents, req.Channel, req.Operator
	cur.VariedBy, cur.VariedProtocol, cur.At = c.op.ID, c.protocol, c.now()
	if err := c.tx.PutConsent(card.Serial, *cur); err != nil {
		return a, err
	}
	return a, event(c, card.Serial, cms.KindCorrection, req.Channel, cms.KindConsent)
}

// cancelConsent puts back the consents in force before the original.
func (s *rules) cancelConsent(c *opCtx, v variation) (applied, error) {
	serial, cur, err := c.tx.ConsentOf(v.ref, v.orig.Outcome.Protocol)
	a := applied{serial: serial}
	if err != nil || cur == nil {
		a.rejects = superseded()
		return a, err
	}
	a.channel = cur.Channel
	prev, err := previousConsent(c.tx, serial, cur)
	if err != nil {
		return a, err
	}
	if err := c.tx.RestoreConsent(serial, prev); err != nil {
		return a, err
	}
	return a, event(c, serial, cms.KindCancellation, cur.Channel, cms.KindConsent)
}

// correctReader replaces the payment reference of an accepted reader
// request; the counter is unchanged.
func (s *rules) correctReader(c *opCtx, v variation) (applied, error) {
	var req cms.ReaderRequest
	if strictJSON(v.payload, &req) != nil {
		return applied{rejects: badPayload()}, nil
	}
	a := applied{serial: req.Card.Serial, channel: req.Channel, operator: req.Operator}
	old, rec, err := c.tx.PaymentOf(v.ref, v.orig.Outcome.Protocol)
	if err != nil || rec == nil {
		a.rejects = superseded()
		return a, err
	}
	if rec.Serial != req.Card.Serial {
		a.rejects = []cms.Reject{{Code: cms.CodeCardChanged, Message: "La correzione deve riguardare la stessa tessera."}}
		return a, nil
	}
	card, err := c.tx.Card(req.Card.Serial)
	if err != nil {
		return a, err
	}
	// The rules of a reader request, except that the card already
	// counts this reader.
	a.rejects = req.Validate(card, c.now())
	if req.Payment.Reference != old {
		r, err := paymentUsed(c.tx, req.Payment.Reference)
		if err != nil {
			return a, err
		}
		a.rejects = append(a.rejects, r...)
	}
	if len(a.rejects) > 0 {
		return a, nil
	}
	if err := c.tx.DeletePayment(old); err != nil {
		return a, err
	}
	rec.VariedBy, rec.VariedProtocol = c.op.ID, c.protocol
	if err := c.tx.PutPayment(req.Payment.Reference, *rec); err != nil {
		return a, err
	}
	return a, event(c, card.Serial, cms.KindCorrection, req.Channel, cms.KindReader)
}

// cancelReader gives back the reader counter and frees the payment
// reference of an accepted reader request.
func (s *rules) cancelReader(c *opCtx, v variation) (applied, error) {
	key, rec, err := c.tx.PaymentOf(v.ref, v.orig.Outcome.Protocol)
	if err != nil || rec == nil {
		return applied{rejects: superseded()}, err
	}
	a := applied{serial: rec.Serial}
	card, err := c.tx.Card(rec.Serial)
	if err != nil || card == nil {
		return a, err
	}
	if card.Readers > 0 {
		card.Readers--
	}
	if err := c.tx.DeletePayment(key); err != nil {
		return a, err
	}
	if err := c.tx.PutCard(*card); err != nil {
		return a, err
	}
	// The fee may now be refunded, once (refund.go).
	if err := c.tx.PutRefund(c.op.Totem, v.ref, RefundRecord{Serial: card.Serial, Payment: key,
		Cancelled: c.protocol, CancelledBy: c.op.ID, At: c.now()}); err != nil {
		return a, err
	}
	return a, event(c, card.Serial, cms.KindCancellation, "", cms.KindReader+" "+strconv.Itoa(card.Readers))
}
