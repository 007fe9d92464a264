package cmdsig

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/aslcns/totem/internal/boltdb"
	"go.etcd.io/bbolt"
)

// RecordOptions configures a Record.
type RecordOptions struct {
	// Now returns the wall clock and whether it is synchronised (NTP);
	// default time.Now, synchronised.
	Now func() (time.Time, bool)
	// MaxPerKey bounds the live command ids of one key; default 1024.
	// Only commands signed by a trusted key reach the record, so the whole
	// is bounded by the keys trusted times this, and a key that floods
	// fills its own share: every other key, ops and technician, keeps
	// being obeyed.
	MaxPerKey int
}

// Record is the durable record of executed command ids (bbolt, one fsynced
// commit per admitted command), kept until each command expires.
//
// Expiry is measured against a floor that never goes back: the latest of
// the receiver's wall clock while it is synchronised and the issue time of
// every command admitted (signed by a trusted key, so a time a console
// vouched for). A command expired against the floor is refused, and only
// ids of such commands are purged, so a purged id can never run again —
// whatever the board's clock does after a reboot without RTC. An
// unsynchronised clock does not move the floor: a totem whose clock is
// wrong still obeys its technicians.
//
// An issue time moves the floor no further than the receiver's clock plus
// Skew, synchronised or not: one command dated a day ahead, signed by any
// trusted key, would otherwise set the floor a day ahead and every honest
// command after it, across restarts, would be refused as expired. A floor
// found ahead of a synchronised clock (set while the clock was wrong and
// ahead) comes back to it, never below the expiry of an id already purged,
// which is kept for that reason.
type Record struct {
	db     *bbolt.DB
	now    func() (time.Time, bool)
	perKey int
}

var (
	bucketIDs  = []byte("ids")  // key "\x00" id → expiry (Unix ns, big endian)
	bucketMeta = []byte("meta") // "floor", "purged" → Unix ns, big endian
	keyFloor   = []byte("floor")
	// keyPurged is the latest expiry of a purged id: the floor may never
	// come back to it. A record written before it existed has none: its
	// floor is then taken as the bound (never lowered).
	keyPurged = []byte("purged")
)

// OpenRecord opens (or creates) the record at path.
func OpenRecord(path string, o RecordOptions) (*Record, error) {
	if o.Now == nil {
		o.Now = func() (time.Time, bool) { return time.Now(), true }
	}
	if o.MaxPerKey <= 0 {
		o.MaxPerKey = 1024
	}
	db, err := boltdb.Open(path, bucketIDs, bucketMeta)
	if err != nil {
		return nil, fmt.Errorf("cmdsig: record: %w", err)
	}
	return &Record{db: db, now: o.Now, perKey: o.MaxPerKey}, nil
}

// Close closes the record.
func (r *Record) Close() error { return r.db.Close() }

func getTime(b *bbolt.Bucket, k []byte) (int64, bool) {
	if v := b.Get(k); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v)), true
	}
	return 0, false
}

func putTime(b *bbolt.Bucket, k []byte, t int64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(t)))
}

// Floor returns the record's floor (zero time while there is none).
func (r *Record) Floor() (time.Time, error) {
	var f int64
	err := r.db.View(func(tx *bbolt.Tx) error {
		f, _ = getTime(tx.Bucket(bucketMeta), keyFloor)
		return nil
	})
	if f == 0 {
		return time.Time{}, err
	}
	return time.Unix(0, f).UTC(), err
}

// Admit records (key, id) if the command is live and new; otherwise it
// returns a *Refusal (expired, not_yet_valid, replayed, record_full or
// record_error). It returns only after the record is on disk.
func (r *Record) Admit(key, id string, issued, expires time.Time) error {
	var refusal *Refusal
	err := r.db.Update(func(tx *bbolt.Tx) error {
		ids, meta := tx.Bucket(bucketIDs), tx.Bucket(bucketMeta)
		floor, _ := getTime(meta, keyFloor)
		purged, ok := getTime(meta, keyPurged)
		if !ok {
			purged = floor
		}
		now, synced := r.now()
		ceil := now.Add(Skew).UnixNano()
		if synced {
			if issued.After(now.Add(Skew)) {
				refusal = refuse(CodeNotYetValid, "issued %v after this clock", issued.Sub(now).Round(time.Second))
				return nil
			}
			if floor > ceil {
				floor = max(ceil, purged+1)
			}
			floor = max(floor, now.UnixNano())
		}
		exp := expires.Add(Skew).UnixNano()
		if exp < floor {
			refusal = refuse(CodeExpired, "expired %v ago", time.Duration(floor-exp).Round(time.Second))
			return nil
		}
		prefix := append([]byte(key), 0)
		k := append(prefix[:len(prefix):len(prefix)], id...)
		if ids.Get(k) != nil {
			refusal = refuse(CodeReplayed, "command id already executed")
			return nil
		}
		floor = max(floor, min(issued.UnixNano(), ceil))
		// Purge what the floor has expired: those can never be admitted again.
		var stale [][]byte
		ids.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				stale = append(stale, append([]byte(nil), k...))
			} else if e := int64(binary.BigEndian.Uint64(v)); e < floor {
				stale = append(stale, append([]byte(nil), k...))
				purged = max(purged, e)
			}
			return nil
		})
		for _, k := range stale {
			if err := ids.Delete(k); err != nil {
				return err
			}
		}
		if err := putTime(meta, keyFloor, floor); err != nil {
			return err
		}
		if err := putTime(meta, keyPurged, purged); err != nil {
			return err
		}
		live := 0
		c := ids.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			live++
		}
		if live >= r.perKey {
			refusal = refuse(CodeRecordFull, "%d live command ids of key %s", r.perKey, key)
			return nil
		}
		return ids.Put(k, binary.BigEndian.AppendUint64(nil, uint64(exp)))
	})
	if err != nil {
		return refuse(CodeRecord, "%v", err)
	}
	if refusal != nil {
		return refusal
	}
	return nil
}
