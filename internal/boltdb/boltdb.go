// Package boltdb opens the bbolt files the hub's and the totem's stores
// keep (audit, rollout jobs, command record, secrets given) the one way
// they all want: owner-only, waiting a while for another process's lock,
// with their buckets in place.
package boltdb

import (
	"time"

	"go.etcd.io/bbolt"
)

// LockWait is how long Open waits for another process holding the file.
const LockWait = 5 * time.Second

// Open opens (or creates, 0600) the bbolt file at path and creates the
// buckets it lacks; on a failure the file is closed again. The error is
// not wrapped: the caller says which store it is.
func Open(path string, buckets ...[]byte) (*bbolt.DB, error) {
	return OpenWait(path, LockWait, buckets...)
}

// OpenWait is Open waiting at most wait, instead of LockWait, for another
// process holding the file (the CMS's store waits 2s).
func OpenWait(path string, wait time.Duration, buckets ...[]byte) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: wait})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
