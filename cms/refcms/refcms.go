// Package refcms is the reference CMS backend: it enforces the rules of
// every operation of package cms, assigns protocol numbers and keeps an
// append-only audit trail. It generates the PIN, PUK
// and CIP of each card, records the second halves in a notification sink
// instead of sending them, simulates the creation of the FSE after a
// consent with the helpdesk tickets of the seeds' retry rule, and reports
// over the audit.
//
// The rules are written once, here, and read and write the CMS's records
// only through the storage interface of cms/cmsstore (a Tx, a Reader):
// Open runs them on a bbolt file (the embedded default, boltStore), New
// on any cmsstore.Store (cms/pgstore: PostgreSQL, shared by several hub
// processes).
//
// Exactly-once: the dedup record of an operation id, the per-totem sequence
// ledger, the change to the cards and the audit record are written in one
// transaction of the store, so a crash between apply and answer can never
// apply an operation twice; the replayed operation finds its stored outcome.
package refcms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

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

// The records, declared in cms/cmsstore where both stores find them;
// these names keep refcms's API.
type (
	ConsentRecord = cmsstore.ConsentRecord
	AuditRecord   = cmsstore.AuditRecord
	Notification  = cmsstore.Notification
	PaymentRecord = cmsstore.PaymentRecord
	ReissueRecord = cmsstore.ReissueRecord
	FSERecord     = cmsstore.FSERecord
	Ticket        = cmsstore.Ticket
	RefundRecord  = cmsstore.RefundRecord
	opRecord      = cmsstore.OpRecord
)

// Store is the reference backend: the rules over a store.
type Store struct {
	st    cmsstore.Store
	db    *bolt.DB // the bbolt file when Open made the store (nil on another)
	rules rules
}

// rules is the configuration the rules of the operations run with.
type rules struct {
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

// Open opens or creates the store at path (bbolt).
func Open(path string, opts *Options) (*Store, error) {
	b, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	s, err := New(b, opts)
	if err != nil {
		b.Close()
		return nil, err
	}
	s.db = b.db
	return s, nil
}

// New runs the rules on st, which it takes over (Close closes it): it
// adds the seed cards that are missing and the secret key when the store
// has none.
func New(st cmsstore.Store, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	r := rules{policy: opts.Policy, key: opts.Secret, fse: opts.FSE, fseRetries: opts.FSERetries, cips: opts.CIPs}
	if r.policy.ID == "" {
		r.policy = cms.Policy2020
	}
	if r.fse == nil {
		r.fse = DefaultFSE
	}
	if r.fseRetries <= 0 {
		r.fseRetries = DefaultFSERetries
	}
	if r.fseEvery = opts.FSERetryEvery; r.fseEvery <= 0 {
		r.fseEvery = DefaultFSERetryEvery
	}
	r.keepDup, r.keepRef = opts.SendLogRetention, opts.RefusalRetention
	if r.keepDup <= 0 {
		r.keepDup = DefaultSendLogRetention
	}
	if r.keepRef <= 0 {
		r.keepRef = DefaultRefusalRetention
	}
	if r.keepCitizen = opts.CitizenRetention; r.keepCitizen <= 0 {
		r.keepCitizen = DefaultCitizenRetention
	}
	err := st.Update(context.Background(), func(tx cmsstore.Tx) error {
		if len(r.key) == 0 {
			k, err := tx.Meta("secret")
			if err != nil {
				return err
			}
			if len(k) == 0 {
				if k, err = newSecret(); err != nil {
					return err
				}
				if err := tx.PutMeta("secret", k); err != nil {
					return err
				}
			}
			r.key = k
		}
		for _, c := range opts.Seed {
			if have, err := tx.Card(c.Serial); err != nil || have != nil {
				if err != nil {
					return err
				}
				continue
			}
			if err := tx.PutCard(c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("refcms: init: %w", err)
	}
	return &Store{st: st, rules: r}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.st.Close() }

// Writable reports whether the store takes a write: for bbolt an empty
// transaction commits (bbolt writes and syncs its meta page), so a full
// disk, a read-only remount or a closed store shows as an error.
func (s *Store) Writable() error { return s.st.Writable(context.Background()) }

// Ping is Writable under ctx: on PostgreSQL a round trip that ends with
// ctx (the hub's readiness check, hub.StoreCheck).
func (s *Store) Ping(ctx context.Context) error { return s.st.Writable(ctx) }

// Policy returns the consent policy in force.
func (s *Store) Policy(context.Context) (cms.Policy, error) { return s.rules.policy, nil }

// Apply applies op exactly once and in sequence per totem.
func (s *Store) Apply(ctx context.Context, op cms.Op) (cms.Outcome, error) {
	outs, err := s.ApplyBatch(ctx, []cms.Op{op})
	if err != nil {
		return cms.Outcome{}, err
	}
	return outs[0], nil
}

// ApplyBatch applies ops in order in one transaction (one fsync with
// bbolt): each operation sees the effects of those before it, exactly as
// if they had been applied one by one.
func (s *Store) ApplyBatch(ctx context.Context, ops []cms.Op) ([]cms.Outcome, error) {
	return s.st.ApplyBatch(ctx, ops, s.effect)
}

// read returns what get reads through the store, in one snapshot.
func read[T any](s *Store, get func(cmsstore.Reader) (T, error)) (T, error) {
	var v T
	err := s.st.View(context.Background(), func(r cmsstore.Reader) (err error) {
		v, err = get(r)
		return err
	})
	return v, err
}

// lookup is read for one record: cms.ErrNotFound when there is none.
func lookup[T any](s *Store, get func(cmsstore.Reader) (*T, error)) (T, error) {
	p, err := read(s, get)
	if err == nil && p == nil {
		err = cms.ErrNotFound
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return *p, nil
}

// Card returns the card with serial.
func (s *Store) Card(serial string) (cms.Card, error) {
	c, err := lookup(s, func(r cmsstore.Reader) (*cms.Card, error) { return r.Card(serial) })
	if err != nil && !errors.Is(err, cms.ErrNotFound) {
		err = fmt.Errorf("refcms: %w", err)
	}
	return c, err
}

// PutCard adds or replaces a card record.
func (s *Store) PutCard(c cms.Card) error {
	return s.st.Update(context.Background(), func(tx cmsstore.Tx) error { return tx.PutCard(c) })
}

// Consents returns the consent state of the card with serial.
func (s *Store) Consents(serial string) (ConsentRecord, error) {
	var rec ConsentRecord
	err := s.st.View(context.Background(), func(r cmsstore.Reader) error {
		var err error
		rec, err = consentsIn(r, serial)
		return err
	})
	return rec, err
}

// consentsIn is Consents within tx (bbolt).
func (s *Store) consentsIn(tx *bolt.Tx, serial string) (ConsentRecord, error) {
	return consentsIn(boltTx{tx}, serial)
}

func consentsIn(r cmsstore.Reader, serial string) (ConsentRecord, error) {
	cur, err := r.Consent(serial)
	if err != nil {
		return ConsentRecord{}, err
	}
	if cur == nil {
		return ConsentRecord{}, cms.ErrNotFound
	}
	prev, err := previousConsent(r, serial, cur)
	cur.Previous = prev
	return *cur, err
}

// previousConsent returns the record cur replaced: embedded in cur by
// older versions, else kept apart.
func previousConsent(r cmsstore.Reader, serial string, cur *ConsentRecord) (*ConsentRecord, error) {
	if cur.Previous != nil {
		return cur.Previous, nil
	}
	return r.PreviousConsent(serial)
}

// CIP returns the CIP of the card serial, as its activation form gave
// it: the reference CMS derives it, so tests and the demo can type it.
func (s *Store) CIP(serial string) string { return s.rules.codes(serial).cip }

// codes are the card serial's PIN, PUK and CIP.
func (s *Store) codes(serial string) codes { return s.rules.codes(serial) }

// Audit returns the whole audit trail in order.
func (s *Store) Audit() ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.st.View(context.Background(), func(r cmsstore.Reader) error {
		return r.Audit(func(a AuditRecord) error {
			a.N = 0
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// LastSeq returns the last sequence number applied for totem.
func (s *Store) LastSeq(totem string) (uint64, error) {
	return read(s, func(r cmsstore.Reader) (uint64, error) { return r.LastSeq(totem) })
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
