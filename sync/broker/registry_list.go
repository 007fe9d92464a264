package broker

import (
	"encoding/json"

	"github.com/aslcns/totem/sync/creds"
)

// Totems lists the usernames of every totem in the registry: a fleet
// job's targets=all.
func (r *Registry) Totems() ([]string, error) {
	var out []string
	err := r.st.View(func(tx RegistryTx) error {
		return bucket(tx, usersBucket).ForEach(func(k string, v []byte) error {
			var u User
			if json.Unmarshal(v, &u) == nil && u.Role == creds.RoleTotem {
				out = append(out, k)
			}
			return nil
		})
	})
	return out, err
}
