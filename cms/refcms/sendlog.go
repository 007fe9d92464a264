package refcms

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// The send log (elenco invii) is every transmission the hub handed over:
// the audit records of applied operations, and in bSendLog the others
// (duplicates, refusals), under keys from the audit's sequence so that
// one cursor order is the hub's order of arrival. Nothing extra is
// written for an applied operation: its audit record is its entry.

var _ cms.SendLogger = (*Store)(nil)

// transmission is the send log entry of op with outcome out.
func transmission(op cms.Op, out cms.Outcome) cms.Transmission { return cmsstore.Transmission(op, out) }

// Classes of repeated transmissions, in repeatKey.
const (
	repeatDuplicate = 'd'
	repeatReused    = 'r' // SEQ_REUSED
	repeatRefused   = 'g' // a sequence gap, refused
)

// repeatKey names a transmission that may come again: its totem, class,
// op id and seq.
func repeatKey(t *cms.Transmission, class byte) []byte {
	k := make([]byte, 0, len(t.Totem)+len(t.OpID)+12)
	k = append(k, t.Totem...)
	k = append(k, 0, class)
	k = append(k, t.OpID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, t.Seq)
}

// classOf is the repeat class of a send log entry (never an audit one).
func classOf(t *cms.Transmission) byte {
	switch {
	case t.Duplicate:
		return repeatDuplicate
	case t.Transport == cms.TxRefused:
		return repeatRefused
	}
	return repeatReused
}

// logRepeat records t, a transmission that changes nothing (a duplicate,
// a refusal), inside tx: the first time as a send log entry, every time
// after that as a count on that entry. A totem replaying one operation
// thousands of times costs one entry, not one per replay (233 bytes each,
// 16 MiB for 5 000 replays before).
func logRepeat(tx *bolt.Tx, class byte, t cms.Transmission) error {
	rk := repeatKey(&t, class)
	sl, idx := tx.Bucket(bSendLog), tx.Bucket(bRepeats)
	if k := idx.Get(rk); len(k) == 8 {
		if v := sl.Get(k); v != nil {
			var first cms.Transmission
			if err := json.Unmarshal(v, &first); err != nil {
				return fmt.Errorf("send log %x: %w", k, err)
			}
			first.Repeats++
			first.Last = t.At
			first.N = 0
			return putJSON(sl, bytes.Clone(k), first)
		}
	}
	k, err := tx.Bucket(bAudit).NextSequence()
	if err != nil {
		return err
	}
	t.N = 0
	if err := putJSON(sl, be(k), t); err != nil {
		return err
	}
	return idx.Put(rk, be(k))
}

// LogRefused records transmissions the hub refused without applying them.
func (s *Store) LogRefused(ts []cms.Transmission) error {
	return s.st.LogRefused(context.Background(), ts)
}

func (s *boltStore) LogRefused(_ context.Context, ts []cms.Transmission) error {
	if len(ts) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, t := range ts {
			t.Transport, t.Processing = cms.TxRefused, cms.TxPending
			if err := logRepeat(tx, repeatRefused, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("refcms: send log: %w", err)
	}
	return nil
}

// decodeEntry reads a send log entry from the audit or the send log bucket.
func decodeEntry(audit bool, k, v []byte) (cms.Transmission, error) {
	n := binary.BigEndian.Uint64(k)
	if audit {
		var a AuditRecord
		if err := json.Unmarshal(v, &a); err != nil {
			return cms.Transmission{}, fmt.Errorf("audit %d: %w", n, err)
		}
		a.N = n
		return cmsstore.FromAudit(a), nil
	}
	var t cms.Transmission
	if err := json.Unmarshal(v, &t); err != nil {
		return cms.Transmission{}, fmt.Errorf("send log %d: %w", n, err)
	}
	t.N = n
	return t, nil
}

// SendLog lists the send log newest first, a page at a time.
func (s *Store) SendLog(f cms.SendLogFilter) ([]cms.Transmission, uint64, error) {
	switch f.Outcome {
	case "", cms.SendAccepted, cms.SendRejected, cms.SendRefused, cms.SendDuplicate:
	default:
		return nil, 0, fmt.Errorf("refcms: send log: unknown outcome %q", f.Outcome)
	}
	if f.Max <= 0 {
		f.Max = 50
	}
	f.Max = min(f.Max, 500)
	return s.st.SendLog(context.Background(), f)
}

func (s *boltStore) SendLog(_ context.Context, f cms.SendLogFilter) ([]cms.Transmission, uint64, error) {
	var out []cms.Transmission
	var next uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		type head struct {
			c     *bolt.Cursor
			audit bool
			k, v  []byte
		}
		heads := []*head{{c: tx.Bucket(bAudit).Cursor(), audit: true}, {c: tx.Bucket(bSendLog).Cursor()}}
		for _, h := range heads {
			if f.Before == 0 {
				h.k, h.v = h.c.Last()
				continue
			}
			// The last key below Before.
			h.k, h.v = h.c.Seek(be(f.Before))
			if h.k == nil {
				h.k, h.v = h.c.Last()
			}
			for h.k != nil && binary.BigEndian.Uint64(h.k) >= f.Before {
				h.k, h.v = h.c.Prev()
			}
		}
		for {
			var best *head
			for _, h := range heads {
				if len(h.k) == 8 && (best == nil || binary.BigEndian.Uint64(h.k) > binary.BigEndian.Uint64(best.k)) {
					best = h
				}
			}
			if best == nil {
				return nil
			}
			if len(out) == f.Max {
				next = out[len(out)-1].N
				return nil
			}
			t, err := decodeEntry(best.audit, best.k, best.v)
			if err != nil {
				return err
			}
			if cmsstore.Matches(&f, &t) {
				out = append(out, t)
			}
			best.k, best.v = best.c.Prev()
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("refcms: send log: %w", err)
	}
	return out, next, nil
}

// Transmission returns send log entry n with its error messages (never
// the Data an online operation returned: it may hold PIN halves).
func (s *Store) Transmission(n uint64) (cms.Transmission, error) {
	return s.st.Transmission(context.Background(), n)
}

func (s *boltStore) Transmission(_ context.Context, n uint64) (cms.Transmission, error) {
	var t cms.Transmission
	err := s.db.View(func(tx *bolt.Tx) error {
		k := be(n)
		var err error
		if v := tx.Bucket(bAudit).Get(k); v != nil {
			t, err = decodeEntry(true, k, v)
		} else if v := tx.Bucket(bSendLog).Get(k); v != nil {
			t, err = decodeEntry(false, k, v)
		} else {
			return cms.ErrNotFound
		}
		if err != nil {
			return err
		}
		return cmsstore.FillErrors(boltTx{tx}, &t)
	})
	if err != nil {
		return t, fmt.Errorf("refcms: send log %d: %w", n, err)
	}
	return t, nil
}

// Ledger returns the hub's record of totem: the last sequence number
// applied and the stored outcomes of its applied operations with Seq in
// [from, from+max). It reads the audit (one record per applied operation)
// and the stored outcomes; a technician's resynchronisation is rare, so a
// scan is affordable.
func (s *Store) Ledger(totem string, from uint64, max int) (uint64, []cms.LedgerEntry, error) {
	return s.st.Ledger(context.Background(), totem, from, max)
}

func (s *boltStore) Ledger(_ context.Context, totem string, from uint64, max int) (uint64, []cms.LedgerEntry, error) {
	var last uint64
	var out []cms.LedgerEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bLedger).Get([]byte(totem)); len(b) == 8 {
			last = binary.BigEndian.Uint64(b)
		}
		return tx.Bucket(bAudit).ForEach(func(k, v []byte) error {
			var a AuditRecord
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("audit %x: %w", k, err)
			}
			if a.Totem != totem || a.Seq < from || a.Seq >= from+uint64(max) {
				return nil
			}
			rec, found, err := getOp(tx, totem, a.OpID)
			if err != nil {
				return err
			}
			if !found || rec.Seq != a.Seq {
				if slices.Equal(a.Codes, []string{cms.CodeSeqReused}) {
					// A number consumed by an id the totem had used
					// (reuseConsumed): its outcome is in the audit.
					out = append(out, cms.LedgerEntry{OpID: a.OpID, Seq: a.Seq, Kind: a.Kind, Outcome: reject(a.At,
						cmsstore.ErrSeqReused())})
				}
				return nil
			}
			out = append(out, cms.LedgerEntry{OpID: a.OpID, Seq: a.Seq, Kind: a.Kind, Outcome: rec.Outcome})
			return nil
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("refcms: ledger: %w", err)
	}
	slices.SortFunc(out, func(a, b cms.LedgerEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return last, out, nil
}
