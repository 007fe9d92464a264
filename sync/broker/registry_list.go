package broker

import (
	"encoding/json"

	"go.etcd.io/bbolt"

	"github.com/aslcns/totem/sync/creds"
)

// Totems lists the usernames of every totem in the registry: a fleet
// job's targets=all.
func (r *Registry) Totems() ([]string, error) {
	var out []string
	err := r.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(usersBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var u User
			if json.Unmarshal(v, &u) == nil && u.Role == creds.RoleTotem {
				out = append(out, string(k))
			}
			return nil
		})
	})
	return out, err
}
