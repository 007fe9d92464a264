package broker

import (
	"fmt"
	"sync"

	"github.com/aslcns/totem/sync/creds"
)

// Authenticator checks a connecting client's credentials. It is called on
// the client's goroutine inside the broker, so it must be quick.
type Authenticator interface {
	// Authenticate returns the role of username if password is its secret.
	Authenticate(username, password string) (role string, ok bool)
	// Lookup returns the role of username if it is a user. The broker
	// reserves a registered totem's name as a client id to that totem.
	Lookup(username string) (role string, ok bool)
}

// Users combines a Registry with users that live only in memory, such as
// the hub's own ingest client with per-run credentials. An in-memory user
// shadows a registry user of the same name.
type Users struct {
	reg *Registry // may be nil: memory only

	mu  sync.RWMutex
	mem map[string]User
}

var _ Authenticator = (*Users)(nil)

// NewUsers returns Users backed by reg, which may be nil.
func NewUsers(reg *Registry) *Users {
	return &Users{reg: reg, mem: make(map[string]User)}
}

// Add keeps the hash of f's secret in memory.
func (u *Users) Add(f creds.File) error {
	if err := validUser(f.Username, f.Role); err != nil {
		return err
	}
	if f.Password == "" {
		return fmt.Errorf("broker: user %q: empty password", f.Username)
	}
	hash, err := creds.Hash(f.Password)
	if err != nil {
		return fmt.Errorf("broker: add user %q: %w", f.Username, err)
	}
	u.mu.Lock()
	u.mem[f.Username] = User{Username: f.Username, Role: f.Role, Hash: hash}
	u.mu.Unlock()
	return nil
}

// Authenticate checks the in-memory users, then the registry.
func (u *Users) Authenticate(username, password string) (string, bool) {
	u.mu.RLock()
	m, ok := u.mem[username]
	u.mu.RUnlock()
	if ok {
		if match, err := creds.Verify(m.Hash, password); err != nil || !match {
			return "", false
		}
		return m.Role, true
	}
	if u.reg == nil {
		return "", false
	}
	return u.reg.Authenticate(username, password)
}

// Check checks the in-memory users, which are never locked, then the
// registry, which counts failures and locks.
func (u *Users) Check(username, password, remote string) (string, Outcome, bool) {
	u.mu.RLock()
	_, ok := u.mem[username]
	u.mu.RUnlock()
	if ok || u.reg == nil {
		if role, ok := u.Authenticate(username, password); ok {
			return role, Accepted, false
		}
		return "", Rejected, false
	}
	return u.reg.Check(username, password, remote)
}

var _ Checker = (*Users)(nil)

// Lookup returns the role of an in-memory or registry user.
func (u *Users) Lookup(username string) (string, bool) {
	u.mu.RLock()
	m, ok := u.mem[username]
	u.mu.RUnlock()
	if ok {
		return m.Role, true
	}
	if u.reg == nil {
		return "", false
	}
	return u.reg.Lookup(username)
}
