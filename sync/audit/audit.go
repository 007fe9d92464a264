// Package audit is the hub's central audit of people's actions: operator
// sessions, technicians' maintenance, console commands executed or
// refused on a totem or the hub, credential events and the ops console's
// own entries. Records are appended, never changed, each carrying the
// SHA-256 of the one before it (a hash chain), so that Verify finds a
// record altered, removed or inserted and names it. Purging what is older
// than the retention (at least six months, as the Garante asks of
// administrators' logs) keeps the chain verifiable: an anchor records the
// last record purged, its hash and the count.
//
// Entries made at a totem travel through its outbox as operations of kind
// "audit" (cms/opkind) and are appended keyed by their operation id, so a
// resent operation is recorded once.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aslcns/totem/internal/boltdb"
	"github.com/aslcns/totem/sync/protocol"
	"go.etcd.io/bbolt"
)

// Record is one audit record (sync/protocol's wire type).
type Record = protocol.AuditRecord

// Source of the hub's own records.
const SourceHub = "hub"

// ActionPurge is the action of an anchor record.
const ActionPurge = "audit_purge"

// MinRetentionMonths is the shortest retention Purge accepts: the Garante
// asks that administrators' logs be kept at least six months.
const MinRetentionMonths = 6

var (
	bucketRecords = []byte("records") // seq (big endian) → JSON Record
	bucketOps     = []byte("ops")     // totem "\x00" op id → seq: an operation recorded once
	bucketMeta    = []byte("meta")
	keyHead       = []byte("head")   // JSON anchor of the last record: seq, hash
	keyAnchor     = []byte("anchor") // JSON anchor of the last purged record, with the count
)

// mark is a position in the chain: a record's seq and hash, and for the
// purge anchor the records purged in all.
type mark struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	Count uint64 `json:"count,omitempty"`
}

// zeroHash is the Prev of the first record ever.
var zeroHash = hex.EncodeToString(make([]byte, sha256.Size))

// Options configures a Store.
type Options struct {
	Now func() time.Time // default time.Now
}

// Store is the audit, in its own bbolt file.
type Store struct {
	db  *bbolt.DB
	now func() time.Time
}

// Open opens (or creates) the audit at path.
func Open(path string, o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	db, err := boltdb.Open(path, bucketRecords, bucketOps, bucketMeta)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Store{db: db, now: o.Now}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// domain separates these hashes from any other use of SHA-256 here.
const domain = "totem-audit/1"

// Canonical returns the bytes a record's hash covers: every field but the
// hash itself, each length-prefixed, times as Unix nanoseconds. Nothing in
// it depends on JSON encoding.
func Canonical(r *Record) []byte {
	b := make([]byte, 0, 256)
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	u64 := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	tm := func(t time.Time) {
		if t.IsZero() {
			u64(0)
		} else {
			u64(uint64(t.UnixNano()))
		}
	}
	str(domain)
	u64(r.Seq)
	tm(r.At)
	str(r.Source)
	str(r.Actor)
	str(r.Action)
	str(r.Detail)
	str(r.OpID)
	tm(r.TotemAt)
	u64(r.PurgedSeq)
	str(r.PurgedHash)
	u64(r.PurgedCount)
	str(r.Prev)
	return b
}

// HashOf returns the hex SHA-256 of r's canonical encoding.
func HashOf(r *Record) string {
	h := sha256.Sum256(Canonical(r))
	return hex.EncodeToString(h[:])
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func getMark(b *bbolt.Bucket, k []byte) (mark, bool, error) {
	v := b.Get(k)
	if v == nil {
		return mark{}, false, nil
	}
	var m mark
	if err := json.Unmarshal(v, &m); err != nil {
		return mark{}, false, fmt.Errorf("audit: meta %s: %w", k, err)
	}
	return m, true, nil
}

func putMark(b *bbolt.Bucket, k []byte, m mark) error {
	v, _ := json.Marshal(m)
	return b.Put(k, v)
}

// Entry is what Append records: who did what, from where.
type Entry struct {
	Source string // SourceHub or the totem's id
	Actor  string
	Action string
	Detail string
	// OpID and TotemAt: the totem's operation that carried the entry, and
	// its clock. An OpID already recorded for Source records nothing.
	OpID    string
	TotemAt time.Time
}

// Append records e at the end of the chain and returns the record (the
// one recorded before, for an operation already recorded). Actor and
// Detail are scrubbed of anything that looks like a CF, a PIN, a PUK or a
// CIP (Scrub). It returns after the commit is on disk.
func (s *Store) Append(e Entry) (Record, error) {
	recs, err := s.AppendAll([]Entry{e})
	if err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// AppendAll is Append of each entry in order, in one commit: all or none.
func (s *Store) AppendAll(es []Entry) ([]Record, error) {
	for _, e := range es {
		if e.Source == "" || e.Actor == "" || e.Action == "" {
			return nil, errors.New("audit: an entry needs a source, an actor and an action")
		}
	}
	out := make([]Record, 0, len(es))
	err := s.db.Update(func(tx *bbolt.Tx) error {
		h, err := head(tx)
		if err != nil {
			return err
		}
		for _, e := range es {
			var opKey []byte
			if e.OpID != "" {
				opKey = append(append([]byte(e.Source), 0), e.OpID...)
				if v := tx.Bucket(bucketOps).Get(opKey); len(v) == 8 {
					var r Record
					if err := json.Unmarshal(tx.Bucket(bucketRecords).Get(v), &r); err != nil {
						return err
					}
					out = append(out, r)
					continue
				}
			}
			r := Record{Source: e.Source, Actor: Scrub(e.Actor), Action: e.Action, Detail: Scrub(e.Detail), OpID: e.OpID}
			if !e.TotemAt.IsZero() {
				r.TotemAt = e.TotemAt.UTC()
			}
			if err := s.append(tx, &r, &h); err != nil {
				return err
			}
			if opKey != nil {
				if err := tx.Bucket(bucketOps).Put(opKey, seqKey(r.Seq)); err != nil {
					return err
				}
			}
			out = append(out, r)
		}
		return putMark(tx.Bucket(bucketMeta), keyHead, h)
	})
	if err != nil {
		return nil, fmt.Errorf("audit: append: %w", err)
	}
	return out, nil
}

// head returns the chain's head: the last record's seq and hash (seq 0 and
// the zero hash before the first).
func head(tx *bbolt.Tx) (mark, error) {
	h, ok, err := getMark(tx.Bucket(bucketMeta), keyHead)
	if err == nil && !ok {
		h.Hash = zeroHash
	}
	return h, err
}

// append fills r's seq, time, prev and hash, stores it after h and moves
// h to it; the caller stores h (putMark) once it appended all.
func (s *Store) append(tx *bbolt.Tx, r *Record, h *mark) error {
	r.Seq = h.Seq + 1
	r.At = s.now().UTC().Round(0)
	r.Prev = h.Hash
	r.Hash = HashOf(r)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketRecords).Put(seqKey(r.Seq), v); err != nil {
		return err
	}
	h.Seq, h.Hash = r.Seq, r.Hash
	return nil
}

// Filter selects records for List; empty fields select all.
type Filter struct {
	Source string // "hub" or a totem id
	Actor  string // a substring of the actor
	Action string
	Since  time.Time // inclusive, hub time
	Until  time.Time // exclusive
	Max    int       // the newest Max that match; default and at most 1000
}

// MaxList bounds what one List returns.
const MaxList = 1000

// List returns the records f selects, oldest first: at most f.Max, the
// newest of those that match.
func (s *Store) List(f Filter) ([]Record, error) {
	if f.Max <= 0 || f.Max > MaxList {
		f.Max = MaxList
	}
	var out []Record
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Last(); k != nil && len(out) < f.Max; k, v = c.Prev() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !f.Since.IsZero() && r.At.Before(f.Since) {
				break // records are in time order on the hub's clock
			}
			if (f.Source != "" && r.Source != f.Source) || (f.Action != "" && r.Action != f.Action) ||
				(f.Actor != "" && !strings.Contains(r.Actor, f.Actor)) || (!f.Until.IsZero() && !r.At.Before(f.Until)) {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Verify recomputes the chain from the first record kept (after the purge
// anchor, if any) to the head and returns where it first breaks: a record
// whose hash does not match its content (altered), whose prev is not its
// predecessor's hash or whose seq does not follow (one removed or
// inserted before it), a head that is not the last record (removed at the
// end), an anchor that no anchor record vouches for.
func (s *Store) Verify() (protocol.AuditVerify, error) {
	var v protocol.AuditVerify
	err := s.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		head, hasHead, err := getMark(meta, keyHead)
		if err != nil {
			return err
		}
		anchor, hasAnchor, err := getMark(meta, keyAnchor)
		if err != nil {
			return err
		}
		prev, next := zeroHash, uint64(1)
		if hasAnchor {
			prev, next, v.Purged = anchor.Hash, anchor.Seq+1, anchor.Count
		}
		broken := func(seq uint64, format string, args ...any) {
			if v.Problem == "" {
				v.Broken, v.Problem = seq, fmt.Sprintf(format, args...)
			}
		}
		var lastAnchor *Record
		c := tx.Bucket(bucketRecords).Cursor()
		for k, val := c.First(); k != nil && v.Problem == ""; k, val = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			var r Record
			if err := json.Unmarshal(val, &r); err != nil {
				broken(seq, "record %d cannot be read: %v", seq, err)
				break
			}
			if v.Records == 0 {
				v.First = seq
			}
			v.Records++
			v.Last = seq
			switch {
			case r.Seq != seq:
				broken(seq, "record %d is stored under seq %d", r.Seq, seq)
			case seq != next:
				broken(seq, "record %d follows record %d: records %d to %d are missing", seq, next-1, next, seq-1)
			case r.Prev != prev:
				broken(seq, "record %d: its prev hash is not the hash of record %d (a record before it was changed, removed or inserted)", seq, seq-1)
			case HashOf(&r) != r.Hash:
				broken(seq, "record %d: its content does not match its hash (altered)", seq)
			}
			if r.Action == ActionPurge {
				rr := r
				lastAnchor = &rr
			}
			prev, next = r.Hash, seq+1
		}
		if v.Problem != "" {
			return nil
		}
		switch {
		case hasHead && head.Seq != next-1:
			broken(next, "the last record is %d, the head says %d: records %d to %d are missing", next-1, head.Seq, next, head.Seq)
		case hasHead && head.Hash != prev:
			broken(head.Seq, "record %d: its hash is not the head's (altered or replaced)", head.Seq)
		case !hasHead && v.Records > 0:
			broken(v.First, "records without a head")
		case hasAnchor && (lastAnchor == nil || lastAnchor.PurgedSeq != anchor.Seq || lastAnchor.PurgedHash != anchor.Hash ||
			lastAnchor.PurgedCount != anchor.Count):
			broken(v.First, "the purge anchor (up to record %d) is not the one the last audit_purge record holds", anchor.Seq)
		}
		return nil
	})
	if err != nil {
		return v, fmt.Errorf("audit: verify: %w", err)
	}
	v.OK = v.Problem == ""
	return v, nil
}

// Cutoff is the time before which records are purged with a retention of
// months: months calendar months before now.
func Cutoff(now time.Time, months int) (time.Time, error) {
	if months < MinRetentionMonths {
		return time.Time{}, fmt.Errorf("audit: retention of %d months: at least %d", months, MinRetentionMonths)
	}
	return now.AddDate(0, -months, 0), nil
}

// Purge removes the records older than months calendar months (at least
// MinRetentionMonths) from the start of the chain, and appends an anchor
// record that holds the last one removed, its hash and the count; the
// anchor is kept in the store's metadata too, where Verify starts from.
// It returns how many records it removed (0: nothing, and no anchor).
func (s *Store) Purge(months int) (int, error) {
	cutoff, err := Cutoff(s.now(), months)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.db.Update(func(tx *bbolt.Tx) error {
		meta, recs, ops := tx.Bucket(bucketMeta), tx.Bucket(bucketRecords), tx.Bucket(bucketOps)
		anchor, _, err := getMark(meta, keyAnchor)
		if err != nil {
			return err
		}
		h, err := head(tx)
		if err != nil {
			return err
		}
		var last Record
		var gone [][]byte
		c := recs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			// The head stays: the anchor record follows it.
			if !r.At.Before(cutoff) || r.Seq == h.Seq {
				break
			}
			last = r
			gone = append(gone, append([]byte(nil), k...))
		}
		if len(gone) == 0 {
			return nil
		}
		for _, k := range gone {
			if err := recs.Delete(k); err != nil {
				return err
			}
		}
		// The operation ids of purged records: a totem's operation that
		// old is long settled (its queued expiry is shorter).
		oc := ops.Cursor()
		for k, v := oc.First(); k != nil; k, v = oc.Next() {
			if len(v) == 8 && binary.BigEndian.Uint64(v) <= last.Seq {
				if err := oc.Delete(); err != nil {
					return err
				}
			}
		}
		n = len(gone)
		a := mark{Seq: last.Seq, Hash: last.Hash, Count: anchor.Count + uint64(n)}
		if err := putMark(meta, keyAnchor, a); err != nil {
			return err
		}
		r := Record{Source: SourceHub, Actor: "hub", Action: ActionPurge,
			Detail:    fmt.Sprintf("%d records older than %d months purged, up to record %d", n, months, last.Seq),
			PurgedSeq: a.Seq, PurgedHash: a.Hash, PurgedCount: a.Count}
		if err := s.append(tx, &r, &h); err != nil {
			return err
		}
		return putMark(meta, keyHead, h)
	})
	if err != nil {
		return 0, fmt.Errorf("audit: purge: %w", err)
	}
	return n, nil
}

// What Scrub masks: a codice fiscale (16 characters, or the 11 digits of
// a temporary one among runs of 5 to 11 digits), the digits of a PIN (5
// to 8), a PUK (8) or a CIP (10), and whatever follows pin=, puk= or cip=.
// Card serials, TEAM codes and operator serials (16 to 20 digits) are
// kept: they identify without being secrets.
var (
	cfRE     = regexp.MustCompile(`(?i)\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b`)
	digitsRE = regexp.MustCompile(`\b\d+\b`)
	secretRE = regexp.MustCompile(`(?i)\b(pin|puk|cip|cf|codice_fiscale)\s*[=:]\s*\S+`)
)

// Scrub masks in s anything that looks like a PIN, PUK, CIP or CF.
func Scrub(s string) string {
	s = secretRE.ReplaceAllStringFunc(s, func(m string) string {
		i := strings.IndexAny(m, "=:")
		return m[:i+1] + "***"
	})
	s = cfRE.ReplaceAllStringFunc(s, func(m string) string { return m[:3] + "*************" })
	return digitsRE.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) >= 5 && len(m) <= 11 {
			return strings.Repeat("*", len(m))
		}
		return m
	})
}
