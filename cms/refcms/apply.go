package refcms

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	json "github.com/segmentio/encoding/json"
)

// applied is what the rules of one operation gave: the card it concerned,
// who drove it, the refusals, and the Data of an accepted online operation.
// Handlers write nothing unless they accept, except counters kept apart from
// the card record (wrong CIPs).
type applied struct {
	serial   string
	channel  string
	operator string
	rejects  []cms.Reject
	data     any
	ref      string // a variation's original op id
}

// opCtx is one operation being applied inside a transaction.
type opCtx struct {
	tx       cmsstore.Tx
	op       cms.Op
	protocol string
}

func (c *opCtx) now() time.Time { return c.op.Received }

func badPayload() []cms.Reject {
	return []cms.Reject{{Code: cms.CodeBadPayload, Message: "Dati dell'operazione non validi."}}
}

// applier validates an operation of one kind and applies it inside the
// transaction of its opCtx.
type applier func(*Store, *opCtx) (applied, error)

// rule is an applier written on the rules' configuration.
func rule(fn func(*rules, *opCtx) (applied, error)) applier {
	return func(s *Store, c *opCtx) (applied, error) { return fn(&s.rules, c) }
}

// appliers is the reference CMS's piece of each operation kind declared in
// cms/opkind: TestEveryKindApplies fails when a declared kind has none
// (the hub would answer UNKNOWN_KIND).
var appliers = map[string]applier{
	cms.KindConsent:      rule((*rules).applyConsent),
	cms.KindActivation:   rule((*rules).applyActivation),
	cms.KindReprint:      rule(cardRule((*rules).reprint)),
	cms.KindRevocation:   rule(cardRule((*rules).revocation)),
	cms.KindReader:       rule((*rules).applyReader),
	cms.KindHistory:      rule(cardRule((*rules).history)),
	cms.KindPINChange:    rule((*rules).applyPINEvent),
	cms.KindPINUnblock:   rule((*rules).applyPINEvent),
	cms.KindSuspension:   func(_ *Store, c *opCtx) (applied, error) { return applyRefused(c), nil },
	cms.KindReactivation: func(_ *Store, c *opCtx) (applied, error) { return applyRefused(c), nil },
	cms.KindReissue:      rule((*rules).applyReissue),
	cms.KindWrongData:    rule(cardRule((*rules).wrongData)),
	cms.KindLookup:       rule((*rules).applyLookup),
	cms.KindVoid: func(*Store, *opCtx) (applied, error) {
		// The sequence number is settled and recorded, nothing changes.
		return applied{rejects: []cms.Reject{{Code: cms.CodeVoid, Message: "Operazione annullata dal totem: dati non leggibili."}}}, nil
	},
	cms.KindCorrection:   rule((*rules).applyVariation),
	cms.KindCancellation: rule((*rules).applyVariation),
	cms.KindRefund:       rule((*rules).applyRefund),
	cms.KindAudit:        func(_ *Store, c *opCtx) (applied, error) { return applyAudit(c), nil },
}

// applyAudit settles an audit entry's sequence number: the hub stores the
// entry in its audit (sync/audit); the CMS checks that it has the shape
// of one and changes nothing.
func applyAudit(c *opCtx) applied {
	var e struct {
		Actor  string `json:"actor"`
		Action string `json:"action"`
	}
	if json.Unmarshal(c.op.Payload, &e) != nil || e.Actor == "" || e.Action == "" {
		return applied{rejects: badPayload()}
	}
	return applied{}
}

// effect runs the rules of op's kind inside tx (the cmsstore.Effect the
// store's frame calls). An error aborts the transaction.
func (s *Store) effect(tx cmsstore.Tx, op cms.Op, protocol string) (cmsstore.Applied, error) {
	a, err := s.apply(tx, op, protocol)
	return cmsstore.Applied{Serial: a.serial, Channel: a.channel, Operator: a.operator, Rejects: a.rejects,
		Data: a.data, Ref: a.ref}, err
}

func (s *Store) apply(tx cmsstore.Tx, op cms.Op, protocol string) (applied, error) {
	if !op.Expires.IsZero() && op.Received.After(op.Expires) {
		return applied{rejects: []cms.Reject{{Code: cms.CodeExpired, Message: "Operazione scaduta prima dell'invio."}}}, nil
	}
	c := &opCtx{tx: tx, op: op, protocol: protocol}
	if fn, ok := appliers[op.Kind]; ok {
		return fn(s, c)
	}
	return applied{rejects: []cms.Reject{{Code: cms.CodeUnknownKind, Message: "Operazione non supportata."}}}, nil
}

// begin decodes the operation's payload into req, a request about one
// card, and starts its outcome: it loads the card req names
// (cardBySerialOrTEAM) and runs validate on it, whose refusals are in
// a.rejects — as is the refusal of a payload that is not a req. validate
// may ask the store more (a payment already used): its error is begin's.
func begin(c *opCtx, req interface{ Subject() cms.Subject }, validate func(*cms.Card) ([]cms.Reject, error)) (a applied, card *cms.Card, err error) {
	if strictJSON(c.op.Payload, req) != nil {
		return applied{rejects: badPayload()}, nil, nil
	}
	sub := req.Subject()
	a = applied{serial: sub.Card.Serial, channel: sub.Channel, operator: sub.Operator}
	if card, err = cardBySerialOrTEAM(c.tx, sub.Card.Serial, sub.TEAM); err != nil {
		return a, nil, err
	}
	if card != nil {
		a.serial = card.Serial
	}
	a.rejects, err = validate(card)
	return a, card, err
}

// cardRequest is a request about one card whose own Validate, on the card
// and the time, is all its check.
type cardRequest interface {
	Subject() cms.Subject
	Validate(card *cms.Card, now time.Time) []cms.Reject
}

// cardRule is the rule of a cardRequest's kind: it decodes the request
// and validates it on its card (begin), and when nothing is refused
// applies it with apply, which fills in a.
func cardRule[R any, P interface {
	*R
	cardRequest
}](apply func(s *rules, c *opCtx, req P, card *cms.Card, a *applied) error) func(*rules, *opCtx) (applied, error) {
	return func(s *rules, c *opCtx) (applied, error) {
		req := P(new(R))
		a, card, err := begin(c, req, func(card *cms.Card) ([]cms.Reject, error) { return req.Validate(card, c.now()), nil })
		if err != nil || len(a.rejects) > 0 {
			return a, err
		}
		err = apply(s, c, req, card, &a)
		return a, err
	}
}

func (s *rules) applyConsent(c *opCtx) (applied, error) {
	var req cms.ConsentRequest
	a, card, err := begin(c, &req, func(card *cms.Card) ([]cms.Reject, error) { return req.Validate(s.policy, card, c.now()), nil })
	if err != nil || len(a.rejects) > 0 {
		return a, err
	}
	fse, err := s.consent(c, card, cms.ConsentSet{Policy: req.Policy, Consents: req.Consents}, req.Channel, req.Operator, req.Delegate)
	if err != nil {
		return a, err
	}
	a.data, err = s.consentResult(c.tx, card.CF, fse)
	return a, err
}

// consent records a consent set for card and requests the FSE.
func (s *rules) consent(c *opCtx, card *cms.Card, cs cms.ConsentSet, channel, operator string, deleg *cms.Delegation) (string, error) {
	rec := ConsentRecord{Policy: cs.Policy, Consents: cs.Consents, Channel: channel,
		Operator: operator, Delegate: deleg, OpID: c.op.ID, Protocol: c.protocol, At: c.now()}
	if err := c.tx.PushConsent(card.Serial, rec); err != nil {
		return "", err
	}
	if err := event(c, card.Serial, cms.KindConsent, channel, cs.Policy); err != nil {
		return "", err
	}
	return s.requestFSE(c, card)
}

func (s *rules) applyActivation(c *opCtx) (applied, error) {
	var req cms.ActivationRequest
	a, card, err := begin(c, &req, func(card *cms.Card) ([]cms.Reject, error) {
		rs := req.Validate(s.policy, card, c.now())
		if req.Reader == nil {
			return rs, nil
		}
		r, err := paymentUsed(c.tx, req.Reader.Reference)
		return append(rs, r...), err
	})
	if err != nil || len(a.rejects) > 0 {
		return a, err
	}
	contact := req.Contact
	card.State = cms.CardActive
	card.ActivatedAt = c.now()
	card.Contact = &contact
	detail := "diretta"
	if req.Delegate != nil {
		card.Delegations = append(card.Delegations, *req.Delegate)
		detail = req.Delegate.Kind
	}
	if err := event(c, card.Serial, cms.KindActivation, req.Channel, detail); err != nil {
		return a, err
	}
	k := s.codes(card.Serial)
	res := cms.ActivationResult{PINFirstHalf: k.pin[:cms.PINDigits/2], PUKFirstHalf: k.puk[:cms.PUKDigits/2],
		CIP: k.cip, SecondHalvesTo: contact.Masked()}
	if req.Reader != nil {
		if err := s.reader(c, card, *req.Reader, req.Channel); err != nil {
			return a, err
		}
		res.Readers = card.Readers
	}
	if err := c.tx.PutCard(*card); err != nil {
		return a, err
	}
	if err := notify(c, card, cms.KindActivation, k); err != nil {
		return a, err
	}
	if req.Consents != nil {
		if res.FSE, err = s.consent(c, card, *req.Consents, req.Channel, req.Operator, req.Delegate); err != nil {
			return a, err
		}
		detail, err := s.consentResult(c.tx, card.CF, res.FSE)
		if err != nil {
			return a, err
		}
		res.FSEDetail = &detail
	}
	a.data = res
	return a, nil
}

func (s *rules) reprint(c *opCtx, req *cms.ReprintRequest, card *cms.Card, a *applied) error {
	if req.Contact != nil {
		contact := *req.Contact
		card.Contact = &contact
		if err := c.tx.PutCard(*card); err != nil {
			return err
		}
	}
	k := s.codes(card.Serial)
	if err := notify(c, card, cms.KindReprint, k); err != nil {
		return err
	}
	a.data = cms.ReprintResult{PINFirstHalf: k.pin[:cms.PINDigits/2], PUKFirstHalf: k.puk[:cms.PUKDigits/2],
		SecondHalvesTo: card.Contact.Masked()}
	return event(c, card.Serial, cms.KindReprint, req.Channel, req.Reason)
}

func (s *rules) revocation(c *opCtx, req *cms.RevocationRequest, card *cms.Card, a *applied) error {
	if req.Channel == cms.SelfService {
		rs, err := s.checkCIP(c.tx, card.Serial, req.CIP)
		if err != nil || len(rs) > 0 {
			a.rejects = rs
			return err
		}
	}
	card.State = cms.CardRevoked
	card.RevokedAt = c.now()
	card.RevokeReason = req.Reason
	if err := c.tx.PutCard(*card); err != nil {
		return err
	}
	if err := c.tx.SetCIPFailures(card.Serial, 0); err != nil {
		return err
	}
	if err := event(c, card.Serial, cms.KindRevocation, req.Channel, req.Reason); err != nil {
		return err
	}
	re, err := reissue(c, card, cms.KindRevocation, req.Reason)
	if err != nil {
		return err
	}
	a.data = cms.RevocationResult{RevokedAt: card.RevokedAt, Reason: req.Reason, Reissue: re.ID}
	return nil
}

// checkCIP verifies a typed CIP, counting wrong ones apart from the card
// record; after cms.MaxCIPFailures the card can be revoked only at a counter.
func (s *rules) checkCIP(tx cmsstore.Tx, serial, cip string) ([]cms.Reject, error) {
	n, err := tx.CIPFailures(serial)
	if err != nil {
		return nil, err
	}
	if n >= cms.MaxCIPFailures {
		return []cms.Reject{{Code: cms.CodeCIPBlocked,
			Message: "Troppi CIP errati: la revoca si chiede allo sportello, con un documento di identità."}}, nil
	}
	if hmac.Equal([]byte(s.codes(serial).cip), []byte(cip)) {
		return nil, tx.SetCIPFailures(serial, 0)
	}
	n++
	if err := tx.SetCIPFailures(serial, n); err != nil {
		return nil, err
	}
	if n >= cms.MaxCIPFailures {
		return []cms.Reject{{Code: cms.CodeCIPWrong,
			Message: "CIP errato. Tentativi esauriti: la revoca si chiede allo sportello."}}, nil
	}
	return []cms.Reject{{Code: cms.CodeCIPWrong,
		Message: fmt.Sprintf("CIP errato: restano %d tentativi.", cms.MaxCIPFailures-n)}}, nil
}

func (s *rules) applyReader(c *opCtx) (applied, error) {
	var req cms.ReaderRequest
	a, card, err := begin(c, &req, func(card *cms.Card) ([]cms.Reject, error) {
		r, err := paymentUsed(c.tx, req.Payment.Reference)
		return append(req.Validate(card, c.now()), r...), err
	})
	if err != nil || len(a.rejects) > 0 {
		return a, err
	}
	if err := s.reader(c, card, req.Payment, req.Channel); err != nil {
		return a, err
	}
	a.data = cms.ReaderResult{Readers: card.Readers}
	return a, c.tx.PutCard(*card)
}

func paymentUsed(tx cmsstore.Reader, ref string) ([]cms.Reject, error) {
	if ref == "" {
		return nil, nil
	}
	if p, err := tx.Payment(ref); err != nil || p != nil {
		if err != nil {
			return nil, err
		}
		return []cms.Reject{{Code: cms.CodePaymentReused,
			Message: "Questa ricevuta di pagamento è già stata usata per un lettore."}}, nil
	}
	return nil, nil
}

// reader counts a reader bought for card (the caller stores the card).
func (s *rules) reader(c *opCtx, card *cms.Card, p cms.Payment, channel string) error {
	card.Readers++
	rec := PaymentRecord{Serial: card.Serial, OpID: c.op.ID, Protocol: c.protocol, At: c.now()}
	if err := c.tx.PutPayment(p.Reference, rec); err != nil {
		return err
	}
	return event(c, card.Serial, cms.KindReader, channel, strconv.Itoa(card.Readers))
}

func (s *rules) history(c *opCtx, req *cms.HistoryRequest, card *cms.Card, a *applied) error {
	cards := []cms.Card{*card}
	var err error
	if req.Scope == cms.HistoryAll {
		if cards, err = c.tx.CardsOf(card.CF); err != nil {
			return err
		}
	}
	res := cms.HistoryResult{Cards: []cms.CardHistory{}}
	for _, k := range cards {
		h := cms.CardHistory{Serial: k.Serial, TEAM: cms.TEAM(k.Serial), Expiry: k.Expiry, State: k.State,
			ActivatedAt: k.ActivatedAt, RevokedAt: k.RevokedAt, RevokeReason: k.RevokeReason, Readers: k.Readers}
		if h.Events, err = c.tx.History(k.Serial); err != nil {
			return err
		}
		res.Cards = append(res.Cards, h)
	}
	a.data = res
	return nil
}

func (s *rules) applyPINEvent(c *opCtx) (applied, error) {
	if rs := cms.CheckNoPIN(c.op.Payload); rs != nil {
		a := lenient(c.op.Payload)
		a.rejects = rs
		return a, nil
	}
	return cardRule((*rules).pinEvent)(s, c)
}

// pinEvent records what the citizen did on the chip.
func (s *rules) pinEvent(c *opCtx, req *cms.PINEvent, card *cms.Card, _ *applied) error {
	return event(c, card.Serial, c.op.Kind, req.Channel, req.Result)
}

// lenient reads what an operation says of its card and channel, for the
// audit of a refused one.
func lenient(payload []byte) applied {
	var v struct {
		Card     cms.CardRef `json:"card"`
		Channel  string      `json:"channel"`
		Operator string      `json:"operator"`
	}
	_ = json.Unmarshal(payload, &v)
	return applied{serial: v.Card.Serial, channel: v.Channel, operator: v.Operator}
}

func applyRefused(c *opCtx) applied {
	a := lenient(c.op.Payload)
	a.rejects = cms.Refusal(c.op.Kind)
	return a
}

func (s *rules) applyReissue(c *opCtx) (applied, error) {
	var req cms.ReissueRequest
	a, card, err := begin(c, &req, func(card *cms.Card) ([]cms.Reject, error) { return req.Validate(card, c.op.Counter, c.now()), nil })
	if err != nil || len(a.rejects) > 0 {
		return a, err
	}
	if r, err := c.tx.Reissue(card.Serial); err != nil || r != nil {
		if err != nil {
			return a, err
		}
		a.rejects = []cms.Reject{{Code: cms.CodeReissuePending, Message: "Per questa tessera una nuova tessera è già stata richiesta."}}
		return a, nil
	}
	re, err := reissue(c, card, cms.KindReissue, req.Reason)
	if err != nil {
		return a, err
	}
	a.data = cms.ReissueResult{Reissue: re.ID}
	return a, event(c, card.Serial, cms.KindReissue, req.Channel, req.Reason)
}

// applyLookup answers the operator's second identity check with the
// CMS's record of the card; it changes nothing (the audit records who
// looked).
func (s *rules) applyLookup(c *opCtx) (applied, error) {
	var req cms.LookupRequest
	a, card, err := begin(c, &req, func(card *cms.Card) ([]cms.Reject, error) { return req.Validate(card), nil })
	if err != nil || len(a.rejects) > 0 {
		return a, err
	}
	res := cms.LookupResult{Serial: card.Serial, Surname: card.Surname, Name: card.Name, BirthDate: card.BirthDate, Expiry: card.Expiry, State: card.State}
	if card.Contact != nil {
		res.Contact = card.Contact.Masked()
	}
	a.data = res
	return a, nil
}

func (s *rules) wrongData(c *opCtx, req *cms.WrongDataReport, card *cms.Card, a *applied) error {
	card.DataReported = true
	if err := c.tx.PutCard(*card); err != nil {
		return err
	}
	a.data = cms.WrongDataResult{Report: c.protocol, Guidance: cms.GuidanceSceltaRevoca}
	return event(c, card.Serial, cms.KindWrongData, req.Channel, strings.Join(req.Fields, ","))
}

// codes are a card's PIN, PUK and CIP. The reference CMS derives them from
// the serial with its secret key, so a reprint gives the same codes and
// nothing secret is stored per card.
type codes struct{ pin, puk, cip string }

func (s *rules) codes(serial string) codes {
	c := codes{
		pin: s.derive("pin", serial, cms.PINDigits),
		puk: s.derive("puk", serial, cms.PUKDigits),
		cip: s.derive("cip", serial, cms.CIPDigits),
	}
	if cip, ok := s.cips[serial]; ok {
		c.cip = cip
	}
	return c
}

func (s *rules) derive(label, serial string, n int) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(serial))
	mod := uint64(1)
	for range n {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", n, binary.BigEndian.Uint64(m.Sum(nil)[:8])%mod)
}

// cardBySerialOrTEAM finds the card an operation names by its serial or,
// without one, by a TEAM code typed (a card not in the slot); nil when it
// names neither or the CMS does not know it.
func cardBySerialOrTEAM(tx cmsstore.Reader, serial, team string) (*cms.Card, error) {
	switch {
	case serial != "":
		return tx.Card(serial)
	case team != "":
		return tx.CardByTEAM(team)
	}
	return nil, nil
}
