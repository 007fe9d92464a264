package broker

import (
	"fmt"
	"time"
)

// An external broker authenticates the users itself (sync/dynsec): the
// registry does not see their logins, so what a login does here is done
// by these when the broker has been told.

// ConfirmRotation makes username's pending secret (Rotate) its only one,
// as a login with it does on the embedded broker. It reports whether there
// was one.
func (r *Registry) ConfirmRotation(username string, now time.Time) (bool, error) {
	u, ok, err := r.Get(username)
	if err != nil || !ok || u.Next == "" {
		return false, err
	}
	promoted, err := r.promote(username, u.Next, now)
	if err != nil {
		return false, fmt.Errorf("broker: confirm rotation of %s: %w", username, err)
	}
	if promoted {
		r.events.add(username, EventRotated)
	}
	return promoted, nil
}

// LockUser locks username as MaxFailures failures would (ops' decision,
// from = who asked): Check refuses it until Unlock or a new secret.
func (r *Registry) LockUser(username, from string, now time.Time) error {
	err := r.st.Update(username, func(tx RegistryTx) error {
		if v, err := bucket(tx, usersBucket).Get(username); err != nil {
			return err
		} else if v == nil {
			return fmt.Errorf("no user %q", username)
		}
		return changeLock(bucket(tx, locksBucket), username, func(lk *Lock) {
			lk.Locked, lk.LockedAt, lk.From = true, now.UTC(), from
		})
	})
	if err != nil {
		return fmt.Errorf("broker: lock: %w", err)
	}
	r.events.add(username, EventLocked)
	return nil
}
