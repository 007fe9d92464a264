package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/sync/creds"
)

// Validity is how long totems' secrets last (seed 000: 240 days the
// first, then 90) and how long before expiry a totem replaces its own.
type Validity struct {
	First, Next, RotateBefore time.Duration
}

// DefaultValidity is [fleet] first_validity, validity and rotate_before's
// defaults.
var DefaultValidity = Validity{First: 240 * 24 * time.Hour, Next: 90 * 24 * time.Hour, RotateBefore: 14 * 24 * time.Hour}

// SetValidity sets the validity of the secrets the registry issues from
// now on (call before use).
func (r *Registry) SetValidity(v Validity) { r.validity = v }

func (v Validity) first(now time.Time) (expires, rotateAt time.Time) {
	return now.Add(v.First), now.Add(v.First - v.RotateBefore)
}

func (v Validity) next(now time.Time) (expires, rotateAt time.Time) {
	return now.Add(v.Next), now.Add(v.Next - v.RotateBefore)
}

// ErrNotTotem: only totems rotate their secret.
var ErrNotTotem = errors.New("not a totem")

// Rotate records password as username's next secret: from now on both it
// and the current one are accepted, until a login with the new one makes
// it the secret (Check) and ends the old. A second Rotate before that
// replaces the pending secret. It returns the new secret's expiry and when
// the totem should rotate again.
func (r *Registry) Rotate(username, password string, now time.Time) (expires, rotateAt time.Time, err error) {
	if len(password) < 32 || len(password) > 128 {
		return time.Time{}, time.Time{}, errors.New("broker: rotate: a secret of 32 to 128 characters")
	}
	hash, err := creds.Hash(password)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	now = now.UTC()
	expires, rotateAt = r.validity.next(now)
	err = r.st.Update(username, func(tx RegistryTx) error {
		b := bucket(tx, usersBucket)
		var u User
		found, err := getJSON(b, username, &u)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("no user %q", username)
		}
		if u.Role != creds.RoleTotem {
			return ErrNotTotem
		}
		u.Next, u.NextExpires = hash, expires
		return putJSON(b, username, u)
	})
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("broker: rotate %s: %w", username, err)
	}
	return expires, rotateAt, nil
}

// promote makes the pending secret the secret, after a login with it, and
// reports whether it did (not when another rotation came in between).
func (r *Registry) promote(username, next string, now time.Time) (promoted bool, err error) {
	err = r.st.Update(username, func(tx RegistryTx) error {
		b := bucket(tx, usersBucket)
		var u User
		if found, err := getJSON(b, username, &u); !found || err != nil {
			return err
		}
		if u.Next != next { // another rotation came in between: keep it
			return nil
		}
		u.Hash, u.Expires, u.Next, u.NextExpires, u.Rotated = u.Next, u.NextExpires, "", time.Time{}, now.UTC()
		promoted = true
		return putJSON(b, username, u)
	})
	return promoted, err
}

func expired(exp, now time.Time) bool { return !exp.IsZero() && !now.Before(exp) }

// Credential is what ops sees of a user's credentials: never a hash.
type Credential struct {
	Username string    `json:"username"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Pending  bool      `json:"pending,omitempty"` // a rotation waits for its first login
	Rotated  time.Time `json:"rotated,omitzero"`
	Failures int       `json:"failures,omitempty"`
	Locked   bool      `json:"locked,omitempty"`
	LockedAt time.Time `json:"locked_at,omitzero"`    // when the lock came
	From     string    `json:"locked_from,omitempty"` // source address of the failure that locked
	// Events counts the user's credential events since the hub started,
	// by event (CredentialEvents, all present).
	Events map[string]int64 `json:"events,omitempty"`
}

// Credentials lists the registry's users with their expiry and lock, by
// name.
func (r *Registry) Credentials() ([]Credential, error) {
	var out []Credential
	err := r.st.View(func(tx RegistryTx) error {
		// The locks first, in one read: a query per user on a shared
		// store would cost a round trip each.
		locks := make(map[string]Lock)
		err := bucket(tx, locksBucket).ForEach(func(k string, v []byte) error {
			var lk Lock
			if err := json.Unmarshal(v, &lk); err != nil {
				return err
			}
			locks[k] = lk
			return nil
		})
		if err != nil {
			return err
		}
		return bucket(tx, usersBucket).ForEach(func(k string, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return err
			}
			c := Credential{Username: u.Username, Role: u.Role, Created: u.Created, Expires: u.Expires,
				Pending: u.Next != "", Rotated: u.Rotated, Events: r.events.of(u.Username)}
			if lk, ok := locks[k]; ok {
				c.Failures, c.Locked = lk.Failures, lk.Locked
				if lk.Locked {
					c.LockedAt, c.From = lk.LockedAt, lk.From
				}
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("broker: credentials: %w", err)
	}
	return out, nil
}
