package outbox

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lapse is a pending entry found to need quarantine, and why.
type lapse struct {
	seq    uint64
	reason string
}

// SweepReport counts what Sweep moved to quarantine.
type SweepReport struct {
	Scanned    int // pending entries examined
	Expired    int
	Poison     int
	Unreadable int // unreadable or corrupt
	Invalid    int // envelope the hub would refuse
}

// Sweep moves to quarantine every pending entry that expired at now, was
// sent MaxAttempts times without a final result, cannot be read or would
// be refused by the hub (the last two leave a void in the queue). The
// owner calls it periodically; Pending does the same lazily for the
// entries it meets.
func (o *Outbox) Sweep(now time.Time) (SweepReport, error) {
	var rep SweepReport
	var bad []lapse
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			rep.Scanned++
			seq, r, err := o.decodeIn(tx, k, v)
			if err != nil {
				bad = append(bad, lapse{seq, ReasonCorrupt})
				continue
			}
			if r.void != "" {
				continue
			}
			if reason := o.lapsed(&r, now); reason != "" {
				bad = append(bad, lapse{seq, reason})
				continue
			}
			if r.Sealed != nil && o.keys != nil {
				if _, err := o.open(&r, seq); err != nil {
					bad = append(bad, lapse{seq, ReasonUnreadable})
					continue
				}
			}
			if e, err := o.entry(seq, &r, bucketPending); err == nil && !o.sendable(&e) {
				bad = append(bad, lapse{seq, ReasonInvalid})
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("outbox: sweep: %w", err)
	}
	moved, err := o.quarantine(bad, now)
	rep.Expired, rep.Poison = moved[ReasonExpired], moved[ReasonPoison]
	rep.Unreadable = moved[ReasonUnreadable] + moved[ReasonCorrupt]
	rep.Invalid = moved[ReasonInvalid]
	if err != nil {
		return rep, fmt.Errorf("outbox: sweep: %w", err)
	}
	return rep, nil
}

// quarantine moves the entries of bad that are still pending and still
// lapsed to quarantine, in transactions of at most maxBatch entries. It
// returns how many it moved per reason.
func (o *Outbox) quarantine(bad []lapse, now time.Time) (map[string]int, error) {
	moved := map[string]int{}
	for len(bad) > 0 {
		chunk := bad[:min(len(bad), maxBatch)]
		bad = bad[len(chunk):]
		var n map[string]int
		err := o.do(func(tx *bolt.Tx, _ *batch) error {
			n = map[string]int{}
			pending := tx.Bucket(bucketPending)
			for _, l := range chunk {
				key := seqKey(l.seq)
				v := pending.Get(key)
				if v == nil {
					continue // done or moved meanwhile
				}
				seq, r, err := o.decodeIn(tx, key, v)
				reason := ReasonCorrupt
				if err != nil {
					r = record{ID: o.idFor(seq), Raw: bytes.Clone(v)}
				} else if r.void != "" {
					if l.reason != ReasonCorrupt || r.ID == o.idFor(seq) {
						continue
					}
					// A void whose id is not its own: write it again.
					if err := addCounter(tx, keyVoids, -1); err != nil {
						return err
					}
					if err := o.putVoid(tx, seq, o.idFor(seq), r.void); err != nil {
						return err
					}
					n[ReasonCorrupt]++
					continue
				} else if reason = o.lapsed(&r, now); reason == "" {
					if l.reason != ReasonUnreadable && l.reason != ReasonInvalid {
						continue // requeued meanwhile
					}
					reason = l.reason
				}
				if err := o.moveToQuarantine(tx, seq, &r, reason, now); err != nil {
					return err
				}
				n[reason]++
			}
			if len(n) == 0 {
				return reject(errUnchanged)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errUnchanged) {
			return moved, err
		}
		for k, v := range n {
			moved[k] += v
		}
	}
	return moved, nil
}

// moveToQuarantine moves a pending entry to quarantine with reason; when
// the entry can never be sent a void takes its place in the queue.
func (o *Outbox) moveToQuarantine(tx *bolt.Tx, seq uint64, r *record, reason string, now time.Time) error {
	key := seqKey(seq)
	if err := tx.Bucket(bucketPending).Delete(key); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTelemetry).Delete(key); err != nil {
		return err
	}
	r.Quarantine, r.QuarantinedAt = reason, now.Round(0)
	r.Voided = voids(reason)
	if err := o.putRecord(tx.Bucket(bucketQuarantine), seq, r); err != nil {
		return err
	}
	if err := addCounter(tx, keyDepth, -1); err != nil {
		return err
	}
	if r.Voided {
		if err := o.putVoid(tx, seq, r.ID, reason); err != nil {
			return err
		}
	}
	return addCounter(tx, keyQuarantined, 1)
}

// putVoid puts a void for the entry id at seq in the pending queue. Ids
// this database assigned are derived from seq (a hostile record may
// name another entry); an id from an older version is kept if it is 32
// hex digits.
func (o *Outbox) putVoid(tx *bolt.Tx, seq uint64, id, reason string) error {
	if raw, err := hex.DecodeString(id); err != nil || len(raw) != 16 || strings.ToLower(id) != id {
		id = o.idFor(seq)
	} else if _, own := o.ownSeq(raw); own {
		id = o.idFor(seq)
	}
	// Delete first: a value replaced in place never rebalances its page,
	// and the space of the entry the void replaces must be freed.
	pending := tx.Bucket(bucketPending)
	if err := pending.Delete(seqKey(seq)); err != nil {
		return err
	}
	if err := pending.Put(seqKey(seq), voidValue(id, reason)); err != nil {
		return err
	}
	return addCounter(tx, keyVoids, 1)
}

// Quarantined returns up to max quarantined entries in Seq order, with
// their reason in Entry.Quarantine. A payload that cannot be opened is
// left nil: the envelope is what a technician needs.
func (o *Outbox) Quarantined(max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	var out []Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQuarantine).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			seq, r, err := o.decodeIn(tx, k, v)
			if err != nil {
				out = append(out, Entry{Seq: seq, Quarantine: ReasonCorrupt})
				continue
			}
			e, _ := o.entry(seq, &r, bucketQuarantine)
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: quarantined: %w", err)
	}
	return out, nil
}

// quarantined finds the quarantined entry with id; it rejects any other.
func (c *codec) quarantined(tx *bolt.Tx, id string) (uint64, record, error) {
	seq, r, in, err := c.lookup(tx, id)
	if err != nil {
		return seq, r, reject(err)
	}
	if !bytes.Equal(in, bucketQuarantine) {
		return seq, r, reject(fmt.Errorf("entry %d is not quarantined", seq))
	}
	return seq, r, nil
}

// Requeue puts a quarantined entry back in the pending queue with its
// attempts reset; an expired entry loses its expiry. Quotas do not apply:
// it was accepted once. The uplink must rewind to send it again.
func (o *Outbox) Requeue(id string) error {
	err := o.do(func(tx *bolt.Tx, _ *batch) error {
		seq, r, err := o.quarantined(tx, id)
		if err != nil {
			return err
		}
		if r.Raw != nil {
			return reject(fmt.Errorf("entry %d is corrupt", seq))
		}
		if r.Voided {
			return reject(fmt.Errorf("entry %d was voided: its sequence number is spent", seq))
		}
		if !r.Expires.IsZero() && !o.now().Before(r.Expires) {
			r.Expires = time.Time{}
		}
		r.Quarantine, r.QuarantinedAt, r.Attempts = "", time.Time{}, 0
		key := seqKey(seq)
		if err := tx.Bucket(bucketQuarantine).Delete(key); err != nil {
			return err
		}
		if err := o.putRecord(tx.Bucket(bucketPending), seq, &r); err != nil {
			return err
		}
		if o.classes[r.Kind] == ClassTelemetry {
			if err := tx.Bucket(bucketTelemetry).Put(key, seqKey(512)); err != nil {
				return err
			}
		}
		if err := addCounter(tx, keyQuarantined, -1); err != nil {
			return err
		}
		return addCounter(tx, keyDepth, 1)
	})
	if err != nil {
		return wrapID("requeue", id, err)
	}
	return nil
}

// Void gives up a quarantined entry that still holds its sequence number
// (an expired or poison one): a void takes its place in the pending queue,
// so the hub records the number as void (OP_VOID) and applies what follows
// it, and the entry stays in quarantine, marked voided, where Requeue no
// longer takes it. The uplink must rewind to send the void.
func (o *Outbox) Void(id string) error {
	err := o.do(func(tx *bolt.Tx, _ *batch) error {
		seq, r, err := o.quarantined(tx, id)
		if err != nil {
			return err
		}
		if r.Raw != nil || r.Voided {
			return reject(fmt.Errorf("entry %d is voided already", seq))
		}
		r.Voided = true
		if err := o.putRecord(tx.Bucket(bucketQuarantine), seq, &r); err != nil {
			return err
		}
		return o.putVoid(tx, seq, r.ID, r.Quarantine)
	})
	if err != nil {
		return wrapID("void", id, err)
	}
	return nil
}

// Purge deletes the done entries completed before the cutoff and returns
// how many it deleted. Entries of older versions, with no completion
// time, count as completed when the hub received them. Each leaves a
// summary that Recent lists (keepSummary), the newest MaxSettled kept.
func (o *Outbox) Purge(before time.Time) (int, error) {
	var seqs []uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDone).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq, r, err := o.decodeRecord(k, v)
			if err != nil {
				continue // a technician looks at it; never block on it
			}
			at := r.Completed
			if at.IsZero() && r.Result != nil {
				at = r.Result.Transport.At
			}
			if at.IsZero() {
				at = r.Created
			}
			if at.Before(before) {
				seqs = append(seqs, seq)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: purge: %w", err)
	}
	total := 0
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), 1024)]
		seqs = seqs[len(chunk):]
		n := 0
		err := o.do(func(tx *bolt.Tx, _ *batch) error {
			n = 0
			done := tx.Bucket(bucketDone)
			for _, seq := range chunk {
				key := seqKey(seq)
				v := done.Get(key)
				if v == nil {
					continue
				}
				if _, r, err := o.decodeRecord(key, v); err == nil {
					if err := o.dropIndex(tx, r.ID); err != nil {
						return err
					}
					if err := o.keepSummary(tx, seq, &r); err != nil {
						return err
					}
				}
				if err := done.Delete(key); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return reject(errUnchanged)
			}
			return trimSettled(tx)
		})
		if err != nil && !errors.Is(err, errUnchanged) {
			return total, fmt.Errorf("outbox: purge: %w", err)
		}
		total += n
	}
	return total, nil
}

// Recent returns up to max entries, newest first, whatever their state
// (pending, done, quarantined): the totem's send log. Payloads are left
// out: the log is for technicians, the payload is the citizen's.
func (o *Outbox) Recent(max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	var out []Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		names := [][]byte{bucketPending, bucketDone, bucketQuarantine, bucketSettled}
		type head struct {
			c    *bolt.Cursor
			name []byte
			k, v []byte
		}
		heads := make([]*head, len(names))
		for i, n := range names {
			c := tx.Bucket(n).Cursor()
			k, v := c.Last()
			heads[i] = &head{c: c, name: n, k: k, v: v}
		}
		for len(out) < max {
			var best *head
			for _, h := range heads {
				if h.k != nil && (best == nil || bytes.Compare(h.k, best.k) > 0) {
					best = h
				}
			}
			if best == nil {
				return nil
			}
			seq, r, err := o.decodeIn(tx, best.k, best.v)
			if err != nil {
				out = append(out, Entry{Seq: seq, Quarantine: ReasonCorrupt})
			} else {
				e, _ := o.entry(seq, &r, best.name)
				e.Payload = nil
				out = append(out, e)
			}
			best.k, best.v = best.c.Prev()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: recent: %w", err)
	}
	return out, nil
}
