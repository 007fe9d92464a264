package dynsec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
)

// Mirror is the hub's registry with every change that gives, takes or
// changes a secret also made in the plugin: provisioning, enrollment,
// rotation, lock and unlock. It is the hub's Accounts and Enroller on an
// external mosquitto. The registry is written first: a change the plugin
// refuses is returned as an error, and Sync mends what is left behind.
type Mirror struct {
	Reg   *broker.Registry
	C     *Client
	Log   *slog.Logger
	Given *Given // may be nil: then a provisioned secret is always given again

	mu      sync.Mutex
	pending map[string]string // rotations recorded, not yet given to the broker: totem → secret
}

// NewMirror returns a Mirror of reg through c.
func NewMirror(reg *broker.Registry, c *Client, log *slog.Logger) *Mirror {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mirror{Reg: reg, C: c, Log: log, pending: make(map[string]string)}
}

func (m *Mirror) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*m.C.o.Timeout)
}

// Provision is broker.Registry.Provision, then the user in the plugin
// with the secret of the credentials file.
func (m *Mirror) Provision(username, role, path string) (creds.File, error) {
	f, err := m.Reg.Provision(username, role, path)
	if err != nil {
		return creds.File{}, err
	}
	after, _, err := m.Reg.Get(username)
	if err != nil {
		return creds.File{}, err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	// The same secret as before, already given: nothing to set (setting
	// it would end the user's connections).
	u := User{Username: username, Role: role, Password: f.Password, KeepSecret: m.Given.Hash(username) == after.Hash,
		Disabled: m.locked(username)}
	if _, err := m.C.EnsureUser(ctx, u); err != nil {
		return creds.File{}, fmt.Errorf("dynsec: provision %s: %w", username, err)
	}
	return f, m.given(username)
}

// Enroll issues an enrollment code (registry only: the plugin learns the
// secret when the code is redeemed).
func (m *Mirror) Enroll(totem string, validity time.Duration, now time.Time) (string, time.Time, error) {
	return m.Reg.Enroll(totem, validity, now)
}

// Redeem exchanges a code for credentials and gives them to the plugin
// before they are handed to the totem. If the plugin cannot be told, the
// exchange fails (reason internal): ops issue a new code.
func (m *Mirror) Redeem(totem, code string, now time.Time) (creds.File, error) {
	f, err := m.Reg.Redeem(totem, code, now)
	if err != nil {
		return creds.File{}, err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	if _, err := m.C.EnsureUser(ctx, User{Username: totem, Role: creds.RoleTotem, Password: f.Password}); err != nil {
		m.Log.Error("enrollment not given to the broker", "totem", totem, "err", err)
		return creds.File{}, &enroll.Error{Reason: enroll.ReasonInternal, Msg: "the broker could not be told of the new credentials"}
	}
	if err := m.given(totem); err != nil {
		m.Log.Error("secret given not recorded", "totem", totem, "err", err)
	}
	return f, nil
}

// Rotate records a totem's next secret in the registry and keeps it until
// CommitRotation: the plugin keeps one secret per client and ends the
// client's connections when it changes, so it is told only once the
// hub's reply is on its way to the totem.
func (m *Mirror) Rotate(username, password string, now time.Time) (time.Time, time.Time, error) {
	exp, at, err := m.Reg.Rotate(username, password, now)
	if err != nil {
		return exp, at, err
	}
	m.mu.Lock()
	m.pending[username] = password
	m.mu.Unlock()
	return exp, at, nil
}

// CommitRotation gives the broker username's rotated secret, which ends
// the old one there, and confirms the rotation in the registry.
func (m *Mirror) CommitRotation(username string, now time.Time) error {
	m.mu.Lock()
	pw, ok := m.pending[username]
	delete(m.pending, username)
	m.mu.Unlock()
	if !ok {
		return errors.New("dynsec: no rotation pending")
	}
	ctx, cancel := m.ctx()
	defer cancel()
	if err := m.C.SetPassword(ctx, username, pw); err != nil {
		return fmt.Errorf("dynsec: rotate %s: %w", username, err)
	}
	if _, err := m.Reg.ConfirmRotation(username, now); err != nil {
		return err
	}
	return m.given(username)
}

// given records the registry's current hash of username as given.
func (m *Mirror) given(username string) error {
	u, ok, err := m.Reg.Get(username)
	if err != nil || !ok {
		return err
	}
	return m.Given.Put(username, u.Hash)
}

// LockUser locks username in the registry and disables it in the
// plugin, which ends its connections.
func (m *Mirror) LockUser(username, from string, now time.Time) error {
	if err := m.Reg.LockUser(username, from, now); err != nil {
		return err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	if err := m.C.Disable(ctx, username); err != nil {
		return fmt.Errorf("dynsec: lock %s: %w", username, err)
	}
	return nil
}

// Unlock lifts username's lock in the registry and enables it in the
// plugin.
func (m *Mirror) Unlock(username string) (broker.Lock, bool, error) {
	was, ok, err := m.Reg.Unlock(username)
	if err != nil {
		return was, ok, err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	if err := m.C.Enable(ctx, username); err != nil && !Is(err, ReasonClientNotFound) {
		return was, ok, fmt.Errorf("dynsec: unlock %s: %w", username, err)
	}
	return was, ok, nil
}

// Locks is the registry's.
func (m *Mirror) Locks() ([]broker.Lock, error) { return m.Reg.Locks() }

// Verifier is the registry's: the verifier of a totem's current code,
// for a CA request (hub.Enroller).
func (m *Mirror) Verifier(totem string, now time.Time) (enroll.Verifier, error) {
	return m.Reg.Verifier(totem, now)
}

// Lookup is the registry's: whether a name is a user's (hub.Enroller).
func (m *Mirror) Lookup(username string) (string, bool) { return m.Reg.Lookup(username) }

// Credentials is the registry's.
func (m *Mirror) Credentials() ([]broker.Credential, error) { return m.Reg.Credentials() }

func (m *Mirror) locked(username string) bool {
	ls, err := m.Reg.Locks()
	if err != nil {
		return false
	}
	for _, l := range ls {
		if l.Username == username {
			return l.Locked
		}
	}
	return false
}
