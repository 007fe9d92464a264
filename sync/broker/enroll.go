package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
)

// Enrollment is a totem's enrollment code as the registry keeps it: its
// hash (enroll.Hash), to check the code when it is exchanged, and its
// verifier (enroll.Verifier: argon2id of it, with its salt and
// parameters), to answer a CA request for it, never the code; one per
// totem (a new code replaces the last). A record written before
// verifiers has none: its code is exchanged only by a totem that has the
// hub's CA file.
type Enrollment struct {
	Totem    string           `json:"totem"`
	Hash     string           `json:"hash"`
	Verifier *enroll.Verifier `json:"verifier,omitempty"`
	Created  time.Time        `json:"created"`
	Expires  time.Time        `json:"expires"`
	Failures int              `json:"failures,omitempty"` // wrong codes tried for this totem
	Used     time.Time        `json:"used,omitzero"`      // when it was exchanged
}

// Enroll registers totem if the registry lacks it (with a secret nobody
// knows: it cannot log in before it enrolls) and issues a new code, valid
// for validity from now, that replaces any earlier one. The code is
// returned grouped, and only its hash and verifier are kept.
func (r *Registry) Enroll(totem string, validity time.Duration, now time.Time) (code string, expires time.Time, err error) {
	if err := validUser(totem, creds.RoleTotem); err != nil {
		return "", time.Time{}, err
	}
	if totem == enroll.Username {
		return "", time.Time{}, fmt.Errorf("broker: %q is the enroll user's name", totem)
	}
	code, err = enroll.NewCode()
	if err != nil {
		return "", time.Time{}, err
	}
	norm, _ := enroll.ParseCode(code)
	v, err := enroll.NewVerifier(totem, norm)
	if err != nil {
		return "", time.Time{}, err
	}
	placeholder, err := creds.Generate(totem, creds.RoleTotem)
	if err != nil {
		return "", time.Time{}, err
	}
	hash, err := creds.Hash(placeholder.Password)
	if err != nil {
		return "", time.Time{}, err
	}
	now = now.UTC()
	e := Enrollment{Totem: totem, Hash: enroll.Hash(totem, norm), Verifier: &v, Created: now, Expires: now.Add(validity)}
	err = r.st.Update(totem, func(tx RegistryTx) error {
		var u User
		if found, err := getJSON(bucket(tx, usersBucket), totem, &u); err != nil {
			return err
		} else if found {
			if u.Role != creds.RoleTotem {
				return fmt.Errorf("%q is a %s, not a totem", totem, u.Role)
			}
		} else if err := putUser(tx, User{Username: totem, Role: creds.RoleTotem, Hash: hash, Created: now, Expires: e.Expires}); err != nil {
			return err
		}
		return putJSON(bucket(tx, enrollBucket), totem, e)
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("broker: enroll %s: %w", totem, err)
	}
	return code, e.Expires, nil
}

// Redeem exchanges a totem's normalised code for new credentials: the
// user gets their hash (which lifts a lock and ends any older secret) and
// the code is marked used, in one transaction, so a code is exchanged at
// most once. A wrong code counts against the totem's code, which
// MaxAttempts of them burn. Refusals are *enroll.Error with the reason.
func (r *Registry) Redeem(totem, code string, now time.Time) (creds.File, error) {
	f, err := creds.Generate(totem, creds.RoleTotem)
	if err != nil {
		return creds.File{}, err
	}
	hash, err := creds.Hash(f.Password)
	if err != nil {
		return creds.File{}, err
	}
	now = now.UTC()
	f.Expires, f.RotateAt = r.validity.first(now)
	var refusal error
	err = r.st.Update(totem, func(tx RegistryTx) error {
		b := bucket(tx, enrollBucket)
		var e Enrollment
		found, err := getJSON(b, totem, &e)
		if err != nil {
			return err
		}
		if !found {
			refusal = &enroll.Error{Reason: enroll.ReasonUnknown, Msg: "no enrollment code for this totem"}
			return nil
		}
		switch {
		case e.Failures >= enroll.MaxAttempts:
			refusal = &enroll.Error{Reason: enroll.ReasonBurnt, Msg: "too many wrong codes: ops must issue a new one"}
			return nil
		case e.Hash != enroll.Hash(totem, code):
			e.Failures++
			refusal = &enroll.Error{Reason: enroll.ReasonUnknown, Msg: "not this totem's enrollment code"}
			return putJSON(b, totem, e)
		case !e.Used.IsZero():
			refusal = &enroll.Error{Reason: enroll.ReasonUsed, Msg: "the code was used at " + e.Used.Format(time.RFC3339)}
			return nil
		case !now.Before(e.Expires):
			refusal = &enroll.Error{Reason: enroll.ReasonExpired, Msg: "the code expired at " + e.Expires.Format(time.RFC3339)}
			return nil
		}
		var u User
		if found, err := getJSON(bucket(tx, usersBucket), totem, &u); err != nil {
			return err
		} else if found {
			if u.Role != creds.RoleTotem {
				refusal = &enroll.Error{Reason: enroll.ReasonNotTotem, Msg: "the name is not a totem's"}
				return nil
			}
		}
		u = User{Username: totem, Role: creds.RoleTotem, Hash: hash, Created: now, Expires: f.Expires}
		if err := putUser(tx, u); err != nil {
			return err
		}
		e.Used = now
		return putJSON(b, totem, e)
	})
	if err != nil {
		return creds.File{}, &enroll.Error{Reason: enroll.ReasonInternal, Msg: fmt.Sprintf("broker: redeem: %v", err)}
	}
	if refusal != nil {
		return creds.File{}, refusal
	}
	r.events.add(totem, EventEnrolled)
	return f, nil
}

// Verifier returns the verifier of the totem's current code, for a CA
// request (enroll.FetchCA), or the refusal a Redeem of it would meet
// (unknown, burnt, used, expired, not_a_totem), or old_code for a code
// issued before verifiers. It changes nothing: the code is not in a CA
// request, so there is no wrong code to count.
func (r *Registry) Verifier(totem string, now time.Time) (enroll.Verifier, error) {
	e, ok, err := r.EnrollmentOf(totem)
	if err != nil {
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonInternal, Msg: err.Error()}
	}
	now = now.UTC()
	switch {
	case !ok:
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonUnknown, Msg: "no enrollment code for this totem"}
	case e.Failures >= enroll.MaxAttempts:
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonBurnt, Msg: "too many wrong codes: ops must issue a new one"}
	case !e.Used.IsZero():
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonUsed, Msg: "the code was used at " + e.Used.Format(time.RFC3339)}
	case !now.Before(e.Expires):
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonExpired, Msg: "the code expired at " + e.Expires.Format(time.RFC3339)}
	case e.Verifier == nil:
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonOldCode,
			Msg: "the code was issued before the hub could hand out its CA: copy the hub's ca.pem to the totem, or ask ops for a new code"}
	}
	if role, ok := r.Lookup(totem); ok && role != creds.RoleTotem {
		return enroll.Verifier{}, &enroll.Error{Reason: enroll.ReasonNotTotem, Msg: "the name is not a totem's"}
	}
	return *e.Verifier, nil
}

// EnrollmentOf returns the totem's enrollment record, if any.
func (r *Registry) EnrollmentOf(totem string) (Enrollment, bool, error) {
	e, ok, err := viewJSON[Enrollment](r.st, enrollBucket, totem)
	if err != nil {
		return Enrollment{}, false, errors.Join(errors.New("broker: enrollment"), err)
	}
	return e, ok, nil
}

// putUser writes u and forgets its failures and lock (a new secret).
func putUser(tx RegistryTx, u User) error {
	if err := bucket(tx, locksBucket).Delete(u.Username); err != nil {
		return err
	}
	return putJSON(bucket(tx, usersBucket), u.Username, u)
}

// changeLock applies change to username's lock record in b (locksBucket;
// none yet: no failure) and writes it back, unless the user is locked.
func changeLock(b bkt, username string, change func(*Lock)) error {
	lk := Lock{Username: username}
	if _, err := getJSON(b, username, &lk); err != nil || lk.Locked {
		return err
	}
	change(&lk)
	return putJSON(b, username, lk)
}
