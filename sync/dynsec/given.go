package dynsec

import (
	"errors"
	"fmt"

	"github.com/aslcns/totem/internal/boltdb"
	"go.etcd.io/bbolt"
)

var givenBucket = []byte("given")

// Given records, per user, the registry hash of the secret last given to
// the plugin (which keeps its own hash, in another format, and never
// shows it): Sync sets a secret again only where the registry's changed
// since, so a restart does not end every client's connection.
type Given struct{ db *bbolt.DB }

// OpenGiven opens (or creates) the record at path.
func OpenGiven(path string) (*Given, error) {
	db, err := boltdb.Open(path, givenBucket)
	if err != nil {
		return nil, fmt.Errorf("dynsec: open %s: %w", path, err)
	}
	return &Given{db: db}, nil
}

// Close closes the record.
func (g *Given) Close() error { return g.db.Close() }

// Hash returns the registry hash last given for username, "" if none.
func (g *Given) Hash(username string) string {
	if g == nil {
		return ""
	}
	var h string
	_ = g.db.View(func(tx *bbolt.Tx) error {
		h = string(tx.Bucket(givenBucket).Get([]byte(username)))
		return nil
	})
	return h
}

// Put records that the plugin has username's secret of registry hash.
func (g *Given) Put(username, hash string) error {
	if g == nil {
		return nil
	}
	if hash == "" {
		return errors.New("dynsec: empty hash")
	}
	return g.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(givenBucket).Put([]byte(username), []byte(hash))
	})
}

// Delete forgets what was given for username (its client was deleted).
func (g *Given) Delete(username string) error {
	if g == nil {
		return nil
	}
	return g.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(givenBucket).Delete([]byte(username))
	})
}
