package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// Locker is Accounts that lock a user on ops' word (broker.Registry, and
// sync/dynsec's Mirror, which also disables the user in mosquitto and ends
// its connections): a stolen totem, a console gone missing. An external
// broker counts no failed logins for the hub, so there this is the lock.
type Locker interface {
	LockUser(username, from string, now time.Time) error
}

// LockResult is the Data of the hub's lock command.
type LockResult struct {
	Username string `json:"username"`
	Locked   bool   `json:"locked"`
}

// lock locks args["name"], a totem or console, until an unlock. Every lock
// is an audit line: who asked (console and signing key) and which user.
func (cs *commands) lock(a Accounts, cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	l, ok := a.(Locker)
	if !ok {
		return nil, errors.New("this hub's broker users cannot be locked")
	}
	name := cmd.Args["name"]
	if !protocol.ValidTotemID(name) {
		return nil, errors.New("name: want a totem or console name")
	}
	if err := l.LockUser(name, "console "+console, time.Now()); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	h.log.Warn("credentials locked", "username", name, "console", console, "key", cmd.Key)
	return json.Marshal(LockResult{Username: name, Locked: true})
}
