package hub

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/bbolt"
)

// FleetStore keeps the fleet registry's entries (Fleet) across restarts.
// The default is a bbolt file of the hub's own (OpenFleet: presence.db in
// state_dir); a hub whose state is on PostgreSQL keeps them in the
// database every hub process shares (a SharedFleetStore: sync/pgshare).
type FleetStore interface {
	// Load returns every entry (at open).
	Load() ([]TotemStatus, error)
	// Save writes entries, what changed since the last Save, in one
	// write.
	Save([]TotemStatus) error
	Close() error
}

// SharedFleetStore is a FleetStore other hub processes write too. Save
// merges: an entry replaces the stored one's presence, telemetry and
// devices unless the stored one was heard from later (LastSeen), and its
// latest operation's answer (Last, ClockSynced) unless the stored one
// answers a later operation. The registry reads back what the others
// wrote every second (Changed) instead of Load.
type SharedFleetStore interface {
	FleetStore
	// Changed returns the entries written at or after since on the
	// store's clock (zero: all of them), and the store's clock of the
	// latest of them (since if none).
	Changed(since time.Time) ([]TotemStatus, time.Time, error)
}

var fleetBucket = []byte("totems")

// boltFleet is the embedded FleetStore.
type boltFleet struct {
	db  *bbolt.DB
	log *slog.Logger
}

func openBoltFleet(path string) (*boltFleet, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("hub: open fleet registry: %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(fleetBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("hub: open fleet registry: %w", err)
	}
	return &boltFleet{db: db}, nil
}

func (b *boltFleet) Load() ([]TotemStatus, error) {
	var out []TotemStatus
	err := b.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(fleetBucket).ForEach(func(k, v []byte) error {
			var ts TotemStatus
			if err := json.Unmarshal(v, &ts); err != nil || ts.Totem != string(k) {
				skipped(b.log, string(k))
				return nil
			}
			out = append(out, ts)
			return nil
		})
	})
	return out, err
}

func skipped(log *slog.Logger, totem string) {
	if log != nil {
		log.Warn("fleet registry: unreadable entry skipped", "totem", totem)
	}
}

func (b *boltFleet) Save(entries []TotemStatus) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(fleetBucket)
		for _, ts := range entries {
			v, err := json.Marshal(ts)
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(ts.Totem), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *boltFleet) Close() error { return b.db.Close() }

// ReadFleetFile returns the entries of a stopped hub's presence.db
// (totemhub migrate --from-bbolt).
func ReadFleetFile(path string) ([]TotemStatus, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("hub: open fleet registry %s: %w", path, err)
	}
	defer db.Close()
	var out []TotemStatus
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(fleetBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var ts TotemStatus
			if err := json.Unmarshal(v, &ts); err == nil && ts.Totem == string(k) {
				out = append(out, ts)
			}
			return nil
		})
	})
	return out, err
}
