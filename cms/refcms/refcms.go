// Package refcms is the reference CMS backend: it enforces the rules of
// every operation of package cms in its own bbolt store, assigns protocol
// numbers and keeps an append-only audit trail. It generates the PIN, PUK
// and CIP of each card, records the second halves in a notification sink
// instead of sending them, simulates the creation of the FSE after a
// consent with the helpdesk tickets of the seeds' retry rule, and reports
// over the audit.
//
// Exactly-once: the dedup record of an operation id, the per-totem sequence
// ledger, the change to the cards and the audit record are written in one
// bbolt transaction, so a crash between apply and answer can never apply an
// operation twice; the replayed operation finds its stored outcome.
package refcms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

var (
	bCards    = []byte("cards")    // serial → cms.Card
	bConsents = []byte("consents") // serial → ConsentRecord
	// The record the current one replaced, kept one level deep for a
	// cancellation: stored as it was, so a consent never decodes it.
	bConsentsPrev = []byte("consents_prev") // serial → ConsentRecord
	bLedger       = []byte("ledger")        // totem → last applied seq (8 bytes BE)
	bOps          = []byte("ops")           // op id → record
	bAudit        = []byte("audit")         // seq (8 bytes BE) → AuditRecord
	bProtocol     = []byte("protocol")      // NextSequence: protocol numbers
	bQueries      = []byte("queries")       // NextSequence: the references of queries
	bMeta         = []byte("meta")          // "secret" → key deriving PIN, PUK, CIP
	bHistory      = []byte("history")       // serial 0x00 seq → cms.HistoryEvent
	bNotify       = []byte("notify")        // seq → Notification
	bPayments     = []byte("payments")      // payment reference → PaymentRecord
	bReissue      = []byte("reissue")       // serial → ReissueRecord
	bCIPFail      = []byte("cipfail")       // serial → wrong CIPs in a row (8 bytes BE)
	bFSE          = []byte("fse")           // CF → FSERecord
	bTickets      = []byte("tickets")       // seq → Ticket
	// The send log's entries that are not in the audit (duplicates,
	// refusals), keyed from the audit's sequence so both share one order.
	bSendLog = []byte("sendlog") // seq (8 bytes BE) → cms.Transmission
	// The send log entry a repeated transmission is counted on.
	bRepeats = []byte("sendlog_repeats") // repeatKey → send log key (8 bytes BE)
	// The cancelled reader requests, whose fee may be refunded once.
	bRefunds = []byte("refunds") // totem 0x00 reader op id → RefundRecord
)

var buckets = [][]byte{bCards, bConsents, bConsentsPrev, bLedger, bOps, bAudit, bProtocol, bQueries,
	bMeta, bHistory, bNotify, bPayments, bReissue, bCIPFail, bFSE, bTickets, bSendLog, bRepeats, bRefunds}

// Options configures a Store.
type Options struct {
	Policy cms.Policy // the consent policy in force; default cms.Policy2020
	Seed   []cms.Card // cards added when missing (demo)
	// Secret is the key the PIN, PUK and CIP of a card derive from; by
	// default a random one kept in the store.
	Secret []byte
	// CIPs fixes the CIP of some cards (the demo cards: cms.DemoCIP, in
	// the README), which otherwise derives from Secret.
	CIPs map[string]string
	// FSE simulates the outcome of each attempt to create an FSE; default
	// DefaultFSE.
	FSE FSESource
	// FSERetries is how many attempts end in technical errors before a
	// second-level helpdesk ticket is opened; default 5. FSERetryEvery is
	// how often the CMS tries again (RunFSERetries' interval, which the
	// consent's answer tells the citizen); default one minute.
	FSERetries    int
	FSERetryEvery time.Duration
	// SendLogRetention is how long the send log keeps the duplicates of
	// applied operations after their last repeat (default
	// DefaultSendLogRetention), RefusalRetention its refusals (sequence
	// gaps, SEQ_REUSED; default DefaultRefusalRetention). The audit
	// records, the entries of the applied operations, are kept.
	SendLogRetention, RefusalRetention time.Duration
	// CitizenRetention is how long the citizen's data an operation left
	// beside the card's record are kept: notifications and the data of
	// stored results (citizen.go). Default DefaultCitizenRetention.
	CitizenRetention time.Duration
}

// Defaults of Options.
const (
	DefaultSendLogRetention = 4380 * time.Hour // six months
	DefaultRefusalRetention = 720 * time.Hour  // 30 days
	DefaultFSERetries       = 5
	DefaultFSERetryEvery    = time.Minute
)

// Store is the reference backend.
type Store struct {
	db         *bolt.DB
	policy     cms.Policy
	key        []byte
	fse        FSESource
	fseRetries int
	fseEvery   time.Duration // FSERetryEvery
	keepDup    time.Duration // SendLogRetention
	keepRef    time.Duration // RefusalRetention
	// keepCitizen is CitizenRetention.
	keepCitizen time.Duration
	cips        map[string]string
}

var (
	_ cms.Backend      = (*Store)(nil)
	_ cms.BatchBackend = (*Store)(nil)
)

// Open opens or creates the store at path.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("refcms: open %s: %w", path, err)
	}
	s := &Store{db: db, policy: opts.Policy, key: opts.Secret, fse: opts.FSE, fseRetries: opts.FSERetries, cips: opts.CIPs}
	if s.policy.ID == "" {
		s.policy = cms.Policy2020
	}
	if s.fse == nil {
		s.fse = DefaultFSE
	}
	if s.fseRetries <= 0 {
		s.fseRetries = DefaultFSERetries
	}
	if s.fseEvery = opts.FSERetryEvery; s.fseEvery <= 0 {
		s.fseEvery = DefaultFSERetryEvery
	}
	s.keepDup, s.keepRef = opts.SendLogRetention, opts.RefusalRetention
	if s.keepDup <= 0 {
		s.keepDup = DefaultSendLogRetention
	}
	if s.keepRef <= 0 {
		s.keepRef = DefaultRefusalRetention
	}
	if s.keepCitizen = opts.CitizenRetention; s.keepCitizen <= 0 {
		s.keepCitizen = DefaultCitizenRetention
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if len(s.key) == 0 {
			meta := tx.Bucket(bMeta)
			if k := meta.Get([]byte("secret")); k != nil {
				s.key = bytes.Clone(k)
			} else {
				s.key = make([]byte, 32)
				if _, err := rand.Read(s.key); err != nil {
					return err
				}
				if err := meta.Put([]byte("secret"), s.key); err != nil {
					return err
				}
			}
		}
		cards := tx.Bucket(bCards)
		for _, c := range opts.Seed {
			if cards.Get([]byte(c.Serial)) != nil {
				continue
			}
			if err := putJSON(cards, []byte(c.Serial), c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("refcms: init: %w", err)
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Writable reports whether the store takes a write: an empty transaction
// commits (bbolt writes and syncs its meta page), so a full disk, a
// read-only remount or a closed store shows as an error.
func (s *Store) Writable() error { return s.db.Update(func(*bolt.Tx) error { return nil }) }

// Policy returns the consent policy in force.
func (s *Store) Policy(context.Context) (cms.Policy, error) { return s.policy, nil }

// opRecord is what the store keeps per applied operation.
type opRecord struct {
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
	// (Consents fills it in; stored apart).
	Previous *ConsentRecord `json:"previous,omitempty"`
}

// AuditRecord is one entry of the append-only audit trail. It holds codes,
// never personal data beyond the card serial.
type AuditRecord struct {
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

// Apply applies op exactly once and in sequence per totem.
func (s *Store) Apply(ctx context.Context, op cms.Op) (cms.Outcome, error) {
	outs, err := s.ApplyBatch(ctx, []cms.Op{op})
	if err != nil {
		return cms.Outcome{}, err
	}
	return outs[0], nil
}

// ApplyBatch applies ops in order in one transaction (one fsync): each
// operation sees the effects of those before it, exactly as if they had
// been applied one by one.
func (s *Store) ApplyBatch(ctx context.Context, ops []cms.Op) ([]cms.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	outs := make([]cms.Outcome, len(ops))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, op := range ops {
			if op.Received.IsZero() {
				op.Received = time.Now()
			}
			out, err := s.applyTx(tx, op)
			if err != nil {
				return err
			}
			outs[i] = out
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("refcms: apply: %w", err)
	}
	return outs, nil
}

// applyTx is the whole of one operation's life in the store: dedup,
// sequence, rules, protocol number, record, audit.
//
// Dedup is per totem: an id is looked up under (totem, id), so a totem
// sending ids another totem uses (predicted, or copied from the air)
// only ever meets its own operations; it can neither answer for the
// other's operations nor make them refused. An id this totem used at
// another position is refused to this totem alone, and never finally
// while its sequence number is still to come: that would leave a hole
// nothing after it could pass.
func (s *Store) applyTx(tx *bolt.Tx, op cms.Op) (cms.Outcome, error) {
	ops := tx.Bucket(bOps)
	rec, found, err := getOp(tx, op.Totem, op.ID)
	if err != nil {
		return cms.Outcome{}, err
	}
	if found && rec.Seq == op.Seq {
		out := rec.Outcome
		out.Duplicate = true
		return out, logRepeat(tx, repeatDuplicate, transmission(op, out))
	}
	ledger := tx.Bucket(bLedger)
	var last uint64
	if b := ledger.Get([]byte(op.Totem)); len(b) == 8 {
		last = binary.BigEndian.Uint64(b)
	}
	switch {
	case op.Seq > last+1:
		return cms.Outcome{OutOfOrder: true, Expect: last + 1, At: op.Received}, nil
	case op.Seq <= last:
		return seqReused(tx, op)
	case found:
		// The next sequence number under an id this totem already used:
		// refused, and the number consumed (ledger and audit, not the
		// id's record, which stays the original's) so the totem goes on.
		return reuseConsumed(tx, op)
	}
	// A query (the Storico) asks for nothing to be registered: it gets a
	// reference of its own series, "C" and the same digits, and spends
	// no protocol number (issue 17).
	register, prefix := bProtocol, ""
	if op.Kind == cms.KindHistory {
		register, prefix = bQueries, "C"
	}
	n, err := tx.Bucket(register).NextSequence()
	if err != nil {
		return cms.Outcome{}, err
	}
	out := cms.Outcome{
		Protocol: fmt.Sprintf("%s%s%09d", prefix, op.Received.UTC().Format("060102"), n),
		At:       op.Received,
	}
	res, err := s.apply(tx, op, out.Protocol)
	if err != nil {
		return cms.Outcome{}, err
	}
	rejects := res.rejects
	out.Rejects = rejects
	out.Accepted = len(rejects) == 0
	if out.Accepted && res.data != nil {
		if out.Data, err = json.Marshal(res.data); err != nil {
			return cms.Outcome{}, err
		}
	}
	if err := putJSON(ops, opKey(op.Totem, op.ID), opRecord{Totem: op.Totem, Seq: op.Seq, Kind: op.Kind, Outcome: out}); err != nil {
		return cms.Outcome{}, err
	}
	if err := ledger.Put([]byte(op.Totem), be(op.Seq)); err != nil {
		return cms.Outcome{}, err
	}
	audit := tx.Bucket(bAudit)
	k, err := audit.NextSequence()
	if err != nil {
		return cms.Outcome{}, err
	}
	ar := AuditRecord{At: op.Received, Totem: op.Totem, Seq: op.Seq, OpID: op.ID, Kind: op.Kind,
		Serial: res.serial, Channel: res.channel, Operator: res.operator, Protocol: out.Protocol, Accepted: out.Accepted,
		Stamp: op.Stamp, Ref: res.ref}
	for _, r := range rejects {
		ar.Codes = append(ar.Codes, r.Code)
	}
	return out, putJSON(audit, be(k), ar)
}

func reject(at time.Time, r cms.Reject) cms.Outcome {
	return cms.Outcome{Rejects: []cms.Reject{r}, At: at}
}

// seqReused refuses an operation whose id or sequence number is taken,
// and logs the transmission.
func seqReused(tx *bolt.Tx, op cms.Op) (cms.Outcome, error) {
	out := reject(op.Received, cms.Reject{Code: cms.CodeSeqReused, Message: "Operazione non valida."})
	return out, logRepeat(tx, repeatReused, transmission(op, out))
}

// reuseConsumed refuses op, the totem's next operation, for an id it
// already used, and consumes its sequence number: the ledger moves on and
// the audit keeps the refusal (which is its send log entry), so a resend
// of it finds the number taken and gets the same final refusal.
func reuseConsumed(tx *bolt.Tx, op cms.Op) (cms.Outcome, error) {
	out := reject(op.Received, cms.Reject{Code: cms.CodeSeqReused, Message: "Operazione non valida."})
	out.Protocol = ""
	if err := tx.Bucket(bLedger).Put([]byte(op.Totem), be(op.Seq)); err != nil {
		return cms.Outcome{}, err
	}
	audit := tx.Bucket(bAudit)
	k, err := audit.NextSequence()
	if err != nil {
		return cms.Outcome{}, err
	}
	return out, putJSON(audit, be(k), AuditRecord{At: op.Received, Totem: op.Totem, Seq: op.Seq, OpID: op.ID,
		Kind: op.Kind, Accepted: false, Codes: []string{cms.CodeSeqReused}, Stamp: op.Stamp})
}

// opKey is the key of an operation's record: the totem, a NUL (never in a
// totem id), the op id. Records of older versions are under the op id
// alone (getOp still finds them).
func opKey(totem, id string) []byte {
	k := make([]byte, 0, len(totem)+1+len(id))
	k = append(k, totem...)
	k = append(k, 0)
	return append(k, id...)
}

// getOp returns the record of totem's operation id, if it has one.
func getOp(tx *bolt.Tx, totem, id string) (opRecord, bool, error) {
	var rec opRecord
	ops := tx.Bucket(bOps)
	b := ops.Get(opKey(totem, id))
	legacy := b == nil
	if legacy {
		if b = ops.Get([]byte(id)); b == nil {
			return rec, false, nil
		}
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("op record %s: %w", id, err)
	}
	if legacy && rec.Totem != totem {
		return opRecord{}, false, nil // another totem's, from before ids were scoped
	}
	return rec, true, nil
}

func getCard(tx *bolt.Tx, serial string) (*cms.Card, error) {
	b := tx.Bucket(bCards).Get([]byte(serial))
	if b == nil {
		return nil, nil
	}
	var c cms.Card
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("card %s: %w", serial, err)
	}
	return &c, nil
}

// Card returns the card with serial.
func (s *Store) Card(serial string) (cms.Card, error) {
	var c *cms.Card
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		c, err = getCard(tx, serial)
		return err
	})
	if err != nil {
		return cms.Card{}, fmt.Errorf("refcms: %w", err)
	}
	if c == nil {
		return cms.Card{}, cms.ErrNotFound
	}
	return *c, nil
}

// PutCard adds or replaces a card record.
func (s *Store) PutCard(c cms.Card) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bCards), []byte(c.Serial), c)
	})
}

// Consents returns the consent state of the card with serial.
func (s *Store) Consents(serial string) (ConsentRecord, error) {
	var rec ConsentRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = s.consentsIn(tx, serial)
		return err
	})
	return rec, err
}

// consentsIn is Consents within tx.
func (s *Store) consentsIn(tx *bolt.Tx, serial string) (ConsentRecord, error) {
	var rec ConsentRecord
	b := tx.Bucket(bConsents).Get([]byte(serial))
	if b == nil {
		return rec, cms.ErrNotFound
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, err
	}
	prev, err := previousConsent(tx, serial, &rec)
	rec.Previous = prev
	return rec, err
}

// previousConsent returns the record cur replaced: embedded in cur by
// older versions, else kept apart.
func previousConsent(tx *bolt.Tx, serial string, cur *ConsentRecord) (*ConsentRecord, error) {
	if cur.Previous != nil {
		return cur.Previous, nil
	}
	b := tx.Bucket(bConsentsPrev).Get([]byte(serial))
	if b == nil {
		return nil, nil
	}
	var prev ConsentRecord
	if err := json.Unmarshal(b, &prev); err != nil {
		return nil, fmt.Errorf("previous consents %s: %w", serial, err)
	}
	prev.Previous = nil
	return &prev, nil
}

// CIP returns the CIP of the card serial, as its activation form gave
// it: the reference CMS derives it, so tests and the demo can type it.
func (s *Store) CIP(serial string) string { return s.codes(serial).cip }

// Audit returns the whole audit trail in order.
func (s *Store) Audit() ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bAudit).ForEach(func(_, v []byte) error {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// LastSeq returns the last sequence number applied for totem.
func (s *Store) LastSeq(totem string) (uint64, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bLedger).Get([]byte(totem)); len(b) == 8 {
			n = binary.BigEndian.Uint64(b)
		}
		return nil
	})
	return n, err
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// strictJSON decodes a request: unknown fields (a key matches its field
// exactly, no case folding) and trailing data refused; the envelope it came
// in refused duplicate keys (protocol.decode).
// The package encodes and decodes with github.com/segmentio/encoding/json
// (the standard library's API, a third of its CPU): the CMS is where a
// drain spends most of it.
func strictJSON(b []byte, v any) error {
	rest, err := json.Parse(b, v, json.DisallowUnknownFields|json.DontMatchCaseInsensitiveStructFields)
	if err != nil {
		return err
	}
	if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return errors.New("trailing data")
	}
	return nil
}

func be(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}
