package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/protocol"
)

// Accounts is the user registry of the embedded broker, for the hub's
// credential commands. A hub on an external broker has none, and refuses
// them with a reason.
type Accounts interface {
	Unlock(username string) (was broker.Lock, ok bool, err error)
	Locks() ([]broker.Lock, error)
	// Credentials lists the users with their expiry and lock.
	Credentials() ([]broker.Credential, error)
	// Rotate records a totem's next secret (rotate.go).
	Rotate(username, password string, now time.Time) (expires, rotateAt time.Time, err error)
}

// UnlockResult is the Data of the hub's unlock command: the lock lifted,
// or Locked false when the user was not locked (its failures, if any,
// are forgotten all the same).
type UnlockResult struct {
	Username string      `json:"username"`
	Locked   bool        `json:"locked"`
	Lock     broker.Lock `json:"lock"`
}

// accountCommands are the hub commands on broker users and their
// credentials, by name; their
// roles are in sync/cmdsig's table like every other command's.
var accountCommands = commandTable{
	"unlock":      using((*commands).accounts, (*commands).unlock),
	"lock":        using((*commands).accounts, (*commands).lock), // lock.go
	"locks":       using((*commands).accounts, (*commands).locks),
	"enroll":      (*commands).enrollCommand, // enroll.go
	"credentials": using((*commands).accounts, (*commands).credentials),
}

// accounts is the broker users the account commands act on (using).
func (cs *commands) accounts() (Accounts, error) {
	h := cs.h
	if h.o.Accounts == nil {
		return nil, errors.New("this hub keeps no broker users (external broker): unlock there")
	}
	return h.o.Accounts, nil
}

// unlock lifts the lock of args["name"], a totem or console. Every unlock
// is an audit line: who asked (console and signing key), which user, and
// the lock it lifted, with its time and source address.
func (cs *commands) unlock(a Accounts, cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	name := cmd.Args["name"]
	if !protocol.ValidTotemID(name) {
		return nil, errors.New("name: want a totem or console name")
	}
	was, ok, err := a.Unlock(name)
	if err != nil {
		return nil, fmt.Errorf("unlock %s: %w", name, err)
	}
	if ok {
		h.log.Warn("credentials unlocked", "username", name, "console", console, "key", cmd.Key,
			"locked_at", was.LockedAt, "locked_from", was.From)
	} else {
		h.log.Info("unlock of credentials not locked", "username", name, "console", console, "key", cmd.Key,
			"failures", was.Failures)
	}
	return json.Marshal(UnlockResult{Username: name, Locked: ok, Lock: was})
}

// locks lists the users with failed authentications counted, locked or
// not: ops sees who is locked, since when and from where.
func (cs *commands) locks(a Accounts, _ *protocol.Command, _ string) (json.RawMessage, error) {
	return jsonList(a.Locks())
}

// credentials lists the broker users with their expiry, a rotation
// pending and their lock: ops sees what is about to expire.
func (cs *commands) credentials(a Accounts, _ *protocol.Command, _ string) (json.RawMessage, error) {
	return jsonList(a.Credentials())
}
