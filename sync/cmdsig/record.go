package cmdsig

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// RecordOptions configures a Record.
type RecordOptions struct {
	// Now returns the wall clock and whether it is synchronised (NTP);
	// default time.Now, synchronised.
	Now func() (time.Time, bool)
	// Max bounds the command ids kept at once; default 4096.
	Max int
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
// unsynchronised clock is not used at all: a totem whose clock is wrong
// still obeys its technicians.
type Record struct {
	db  *bbolt.DB
	now func() (time.Time, bool)
	max int
}

var (
	bucketIDs  = []byte("ids")  // key "\x00" id → expiry (Unix ns, big endian)
	bucketMeta = []byte("meta") // "floor" → Unix ns, big endian
	keyFloor   = []byte("floor")
)

// OpenRecord opens (or creates) the record at path.
func OpenRecord(path string, o RecordOptions) (*Record, error) {
	if o.Now == nil {
		o.Now = func() (time.Time, bool) { return time.Now(), true }
	}
	if o.Max <= 0 {
		o.Max = 4096
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cmdsig: record: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketIDs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketMeta)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cmdsig: record: %w", err)
	}
	return &Record{db: db, now: o.Now, max: o.Max}, nil
}

// Close closes the record.
func (r *Record) Close() error { return r.db.Close() }

// Admit records (key, id) if the command is live and new; otherwise it
// returns a *Refusal (expired, not_yet_valid, replayed, record_full or
// record_error). It returns only after the record is on disk.
func (r *Record) Admit(key, id string, issued, expires time.Time) error {
	var refusal *Refusal
	err := r.db.Update(func(tx *bbolt.Tx) error {
		ids, meta := tx.Bucket(bucketIDs), tx.Bucket(bucketMeta)
		floor := int64(0)
		if v := meta.Get(keyFloor); len(v) == 8 {
			floor = int64(binary.BigEndian.Uint64(v))
		}
		now, synced := r.now()
		if synced {
			if issued.After(now.Add(Skew)) {
				refusal = refuse(CodeNotYetValid, "issued %v after this clock", issued.Sub(now).Round(time.Second))
				return nil
			}
			floor = max(floor, now.UnixNano())
		}
		exp := expires.Add(Skew).UnixNano()
		if exp < floor {
			refusal = refuse(CodeExpired, "expired %v ago", time.Duration(floor-exp).Round(time.Second))
			return nil
		}
		k := append(append([]byte(key), 0), id...)
		if ids.Get(k) != nil {
			refusal = refuse(CodeReplayed, "command id already executed")
			return nil
		}
		floor = max(floor, issued.UnixNano())
		// Purge what the floor has expired: those can never be admitted again.
		var stale [][]byte
		live := 0
		ids.ForEach(func(k, v []byte) error {
			if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < floor {
				stale = append(stale, append([]byte(nil), k...))
			} else {
				live++
			}
			return nil
		})
		for _, k := range stale {
			if err := ids.Delete(k); err != nil {
				return err
			}
		}
		if live >= r.max {
			refusal = refuse(CodeRecordFull, "%d live command ids", r.max)
			return nil
		}
		if err := ids.Put(k, binary.BigEndian.AppendUint64(nil, uint64(exp))); err != nil {
			return err
		}
		return meta.Put(keyFloor, binary.BigEndian.AppendUint64(nil, uint64(floor)))
	})
	if err != nil {
		return refuse(CodeRecord, "%v", err)
	}
	if refusal != nil {
		return refusal
	}
	return nil
}
