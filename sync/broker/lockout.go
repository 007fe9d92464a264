package broker

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/aslcns/totem/sync/creds"
)

// MaxFailures is how many failed authentications in a row lock a user of
// the registry (seed 000: eight wrong attempts lock the account). A success
// before the eighth starts the count again.
const MaxFailures = 8

// Lock is a registry user's failure count and, once it reached
// MaxFailures, the lock: when, and from which address the failure that
// locked it came. It lives in its own bucket, so a user's record (its
// hash) is never rewritten by a stranger guessing passwords.
type Lock struct {
	Username string    `json:"username"`
	Failures int       `json:"failures"`            // failed authentications in a row
	Last     time.Time `json:"last"`                // the last failure
	LastFrom string    `json:"last_from,omitempty"` // its source address
	Locked   bool      `json:"locked"`
	LockedAt time.Time `json:"locked_at,omitzero"`
	From     string    `json:"from,omitempty"` // source address of the failure that locked
}

// Outcome is the registry's verdict on one authentication.
type Outcome int

const (
	Accepted Outcome = iota // the secret is the user's
	Rejected                // anonymous, unknown user or wrong secret
	Refused                 // the user is locked: the secret was not even looked at
	Expired                 // the right secret, past its expiry: not counted as a failure
)

// Checker is an Authenticator that counts failures per user and locks a
// user after MaxFailures in a row. The broker prefers Check to
// Authenticate when its Authenticator has it.
type Checker interface {
	// Check authenticates username from the source address remote. A
	// locked user is Refused before its secret is checked, so attempts
	// while locked are not counted and cost nothing. justLocked is true
	// for the failure that locked the user.
	Check(username, password, remote string) (role string, out Outcome, justLocked bool)
}

var _ Checker = (*Registry)(nil)

// Check is Authenticate with the lockout. Unknown users are not counted:
// the count is per user of the registry and bounded by their number.
func (r *Registry) Check(username, password, remote string) (string, Outcome, bool) {
	u, ok, lk, err := r.getWithLock(username)
	if err != nil || !ok {
		return "", Rejected, false
	}
	if lk.Locked {
		return "", Refused, false
	}
	now := time.Now()
	match, err := creds.Verify(u.Hash, password)
	match = err == nil && match
	if !match && u.Next != "" {
		// A login with the secret of a rotation confirms it (rotate.go).
		if m, err := creds.Verify(u.Next, password); err == nil && m {
			if expired(u.NextExpires, now) {
				r.events.add(username, EventExpired)
				return "", Expired, false
			}
			promoted, err := r.promote(username, u.Next, now)
			if err != nil {
				return "", Rejected, false
			}
			if promoted {
				r.events.add(username, EventRotated)
			}
			match, u.Expires = true, u.NextExpires
		}
	}
	if match && expired(u.Expires, now) {
		r.events.add(username, EventExpired)
		return "", Expired, false
	}
	if match {
		if lk.Failures == 0 {
			return u.Role, Accepted, false
		}
		locked, err := r.reset(username)
		if err != nil {
			return "", Rejected, false
		}
		if locked { // the eighth failure came in between
			return "", Refused, false
		}
		return u.Role, Accepted, false
	}
	justLocked, err := r.fail(username, remote, now.UTC())
	if err != nil {
		return "", Rejected, false
	}
	r.events.add(username, EventFailed)
	if justLocked {
		r.events.add(username, EventLocked)
		return "", Refused, true
	}
	return "", Rejected, false
}

func (r *Registry) getWithLock(username string) (User, bool, Lock, error) {
	var (
		u     User
		lk    Lock
		found bool
	)
	err := r.st.View(func(tx RegistryTx) (err error) {
		if found, err = getJSON(bucket(tx, usersBucket), username, &u); !found || err != nil {
			return err
		}
		_, err = getJSON(bucket(tx, locksBucket), username, &lk)
		return err
	})
	if err != nil {
		return User{}, false, Lock{}, fmt.Errorf("broker: get user %q: %w", username, err)
	}
	return u, found, lk, nil
}

// fail counts a failure and reports whether it locked the user.
func (r *Registry) fail(username, remote string, now time.Time) (justLocked bool, err error) {
	err = r.st.Update(username, func(tx RegistryTx) error {
		return changeLock(bucket(tx, locksBucket), username, func(lk *Lock) {
			lk.Failures++
			lk.Last, lk.LastFrom = now, remote
			if lk.Failures >= MaxFailures {
				lk.Locked, lk.LockedAt, lk.From = true, now, remote
				justLocked = true
			}
		})
	})
	if err != nil {
		return false, fmt.Errorf("broker: count failure of %q: %w", username, err)
	}
	return justLocked, nil
}

// reset forgets the failures of a user who just authenticated, unless a
// failure locked it meanwhile (then it reports locked).
func (r *Registry) reset(username string) (locked bool, err error) {
	err = r.st.Update(username, func(tx RegistryTx) error {
		b := bucket(tx, locksBucket)
		var lk Lock
		if found, err := getJSON(b, username, &lk); !found || err != nil {
			return err
		}
		if lk.Locked {
			locked = true
			return nil
		}
		return b.Delete(username)
	})
	if err != nil {
		return false, fmt.Errorf("broker: reset failures of %q: %w", username, err)
	}
	return locked, nil
}

// Unlock lifts username's lock and forgets its failures. It returns the
// lock as it was; ok is false when the user was not locked.
func (r *Registry) Unlock(username string) (was Lock, ok bool, err error) {
	err = r.st.Update(username, func(tx RegistryTx) error {
		if v, err := bucket(tx, usersBucket).Get(username); err != nil {
			return err
		} else if v == nil {
			return fmt.Errorf("no user %q", username)
		}
		b := bucket(tx, locksBucket)
		if found, err := getJSON(b, username, &was); err != nil || !found {
			return err
		}
		ok = was.Locked
		return b.Delete(username)
	})
	if err != nil {
		return Lock{}, false, fmt.Errorf("broker: unlock: %w", err)
	}
	if ok {
		r.events.add(username, EventUnlocked)
	}
	return was, ok, nil
}

// Locks lists the users with failures counted, locked or not, by name.
func (r *Registry) Locks() ([]Lock, error) {
	var out []Lock
	err := r.st.View(func(tx RegistryTx) error {
		return bucket(tx, locksBucket).ForEach(func(_ string, v []byte) error {
			var lk Lock
			if err := json.Unmarshal(v, &lk); err != nil {
				return err
			}
			out = append(out, lk)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("broker: locks: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}
