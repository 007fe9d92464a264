// Package fleetuser is the record of one broker user of the fleet, as
// the hub's registry keeps it (sync/broker: User) in bbolt or in the
// PostgreSQL store every hub process shares (cms/pgstore: fleet_users),
// declared once for both.
package fleetuser

import "time"

// User is one broker user of the fleet. Hash is the creds.Hash of its
// secret; the secret itself is never stored.
type User struct {
	Username string    `json:"username"`
	Role     string    `json:"role"`
	Hash     string    `json:"hash"`
	Created  time.Time `json:"created"`
	// Expires: the secret is refused from then on (zero: never; only
	// totems' secrets expire). Next is the hash of the secret a rotation
	// brought, valid with the old one until a login with it makes it the
	// secret (sync/broker's rotate.go), and NextExpires that secret's
	// expiry.
	Expires     time.Time `json:"expires,omitzero"`
	Next        string    `json:"next,omitempty"`
	NextExpires time.Time `json:"next_expires,omitzero"`
	Rotated     time.Time `json:"rotated,omitzero"` // the last rotation's confirmation
}
