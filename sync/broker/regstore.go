package broker

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// RegistryStore keeps the registry's records: its users, their failure
// counts and locks, the totems' enrollment codes, each a JSON record
// under a key in one of three buckets ("users", "locks", "enroll"). The
// default is a bbolt file one process owns (OpenRegistry); a hub whose
// state is on PostgreSQL keeps them in the database every hub process
// shares (sync/pgshare), so that a user provisioned, locked or enrolled
// through one hub is so at every other (NewRegistry).
type RegistryStore interface {
	// View runs fn in a read-only transaction that sees one state.
	View(fn func(RegistryTx) error) error
	// Update runs fn in a read-write transaction, all or nothing; two
	// updates with the same key (the user the change is about) never
	// interleave, across processes too.
	Update(key string, fn func(RegistryTx) error) error
	Close() error
}

// RegistryTx is a RegistryStore's transaction. A record Get returns is
// valid until the transaction ends.
type RegistryTx interface {
	Get(bucket, key string) ([]byte, error) // nil: no record
	Put(bucket, key string, v []byte) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, v []byte) error) error // by key
}

// The registry's buckets.
const (
	usersBucket  = "users"
	locksBucket  = "locks"
	enrollBucket = "enroll"
)

// boltStore is the embedded RegistryStore: fleet.db.
type boltStore struct{ db *bbolt.DB }

func (s boltStore) View(fn func(RegistryTx) error) error {
	return s.db.View(func(tx *bbolt.Tx) error { return fn(boltTx{tx}) })
}

// Update: bbolt has one writer at a time, whatever the key.
func (s boltStore) Update(_ string, fn func(RegistryTx) error) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return fn(boltTx{tx}) })
}

func (s boltStore) Close() error { return s.db.Close() }

type boltTx struct{ tx *bbolt.Tx }

func (t boltTx) Get(bucket, key string) ([]byte, error) {
	return t.tx.Bucket([]byte(bucket)).Get([]byte(key)), nil
}

func (t boltTx) Put(bucket, key string, v []byte) error {
	return t.tx.Bucket([]byte(bucket)).Put([]byte(key), v)
}

func (t boltTx) Delete(bucket, key string) error {
	return t.tx.Bucket([]byte(bucket)).Delete([]byte(key))
}

func (t boltTx) ForEach(bucket string, fn func(string, []byte) error) error {
	return t.tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

// bkt is one bucket of a transaction.
type bkt struct {
	tx   RegistryTx
	name string
}

func bucket(tx RegistryTx, name string) bkt { return bkt{tx, name} }

func (b bkt) Get(key string) ([]byte, error)              { return b.tx.Get(b.name, key) }
func (b bkt) Put(key string, v []byte) error              { return b.tx.Put(b.name, key, v) }
func (b bkt) Delete(key string) error                     { return b.tx.Delete(b.name, key) }
func (b bkt) ForEach(fn func(string, []byte) error) error { return b.tx.ForEach(b.name, fn) }

// getJSON decodes the record under key in b into v and reports whether
// there was one.
func getJSON(b bkt, key string, v any) (bool, error) {
	j, err := b.Get(key)
	if j == nil || err != nil {
		return false, err
	}
	return true, json.Unmarshal(j, v)
}

// viewJSON reads the record under key in bucket, in a read transaction
// of its own.
func viewJSON[T any](st RegistryStore, name string, key string) (v T, found bool, err error) {
	err = st.View(func(tx RegistryTx) (err error) {
		found, err = getJSON(bucket(tx, name), key, &v)
		return err
	})
	return v, found, err
}

func putJSON(b bkt, key string, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, j)
}

// ReadRegistryFile calls fn with every record of a stopped hub's
// registry file (fleet.db), bucket by bucket (totemhub migrate
// --from-bbolt moves them to a shared store).
func ReadRegistryFile(path string, fn func(bucket, key string, v []byte) error) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("broker: open registry %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		for _, name := range []string{usersBucket, locksBucket, enrollBucket} {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			if err := b.ForEach(func(k, v []byte) error { return fn(name, string(k), v) }); err != nil {
				return err
			}
		}
		return nil
	})
}
