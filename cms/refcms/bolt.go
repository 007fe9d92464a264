package refcms

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	"github.com/aslcns/totem/internal/boltdb"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// boltStore is the CMS's records and the exactly-once frame in one bbolt
// file (the embedded default): the dedup record of an operation id, the
// per-totem sequence ledger, the change to the records and the audit
// record are written in one bbolt transaction, so a crash between apply
// and answer can never apply an operation twice; the replayed operation
// finds its stored outcome.
type boltStore struct{ db *bolt.DB }

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

var (
	_ cmsstore.Store     = (*boltStore)(nil)
	_ cmsstore.Retention = (*boltStore)(nil)
)

// openBolt opens or creates the bbolt store at path, waiting at most
// lockWait for another process that holds it.
func openBolt(path string) (*boltStore, error) {
	db, err := boltdb.OpenWait(path, lockWait, buckets...)
	if err != nil {
		return nil, fmt.Errorf("refcms: open %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

// lockWait is how long openBolt waits for another process holding the
// file (shorter than boltdb.LockWait, as it always was).
const lockWait = 2 * time.Second

func (s *boltStore) Close() error { return s.db.Close() }

// Writable: an empty transaction commits (bbolt writes and syncs its meta
// page), so a full disk, a read-only remount or a closed store shows as
// an error.
func (s *boltStore) Writable(context.Context) error {
	return s.db.Update(func(*bolt.Tx) error { return nil })
}

func (s *boltStore) View(_ context.Context, fn func(cmsstore.Reader) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (s *boltStore) Update(_ context.Context, fn func(cmsstore.Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// ApplyBatch applies ops in order in one transaction (one fsync): each
// operation sees the effects of those before it, exactly as if they had
// been applied one by one.
func (s *boltStore) ApplyBatch(ctx context.Context, ops []cms.Op, effect cmsstore.Effect) ([]cms.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	outs := make([]cms.Outcome, len(ops))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, op := range ops {
			if op.Received.IsZero() {
				op.Received = time.Now()
			}
			out, err := applyTx(tx, op, effect)
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
func applyTx(tx *bolt.Tx, op cms.Op, effect cmsstore.Effect) (cms.Outcome, error) {
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
	name, prefix := cmsstore.Series(op.Kind)
	register := bProtocol
	if name != "protocol" {
		register = bQueries
	}
	n, err := tx.Bucket(register).NextSequence()
	if err != nil {
		return cms.Outcome{}, err
	}
	out := cms.Outcome{Protocol: cmsstore.Number(prefix, op.Received, n), At: op.Received}
	res, err := effect(boltTx{tx}, op, out.Protocol)
	if err != nil {
		return cms.Outcome{}, err
	}
	out.Rejects = res.Rejects
	out.Accepted = len(res.Rejects) == 0
	if out.Accepted && res.Data != nil {
		if out.Data, err = json.Marshal(res.Data); err != nil {
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
		Serial: res.Serial, Channel: res.Channel, Operator: res.Operator, Protocol: out.Protocol, Accepted: out.Accepted,
		Stamp: op.Stamp, Ref: res.Ref}
	for _, r := range res.Rejects {
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
	out := reject(op.Received, cmsstore.ErrSeqReused())
	return out, logRepeat(tx, repeatReused, transmission(op, out))
}

// reuseConsumed refuses op, the totem's next operation, for an id it
// already used, and consumes its sequence number: the ledger moves on and
// the audit keeps the refusal (which is its send log entry), so a resend
// of it finds the number taken and gets the same final refusal.
func reuseConsumed(tx *bolt.Tx, op cms.Op) (cms.Outcome, error) {
	out := reject(op.Received, cmsstore.ErrSeqReused())
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

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func be(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// newSecret makes a random key.
func newSecret() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}
