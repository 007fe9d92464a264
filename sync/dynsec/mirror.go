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
	"github.com/aslcns/totem/sync/protocol"
)

// Mirror is the hub's registry with every change that gives, takes or
// changes a secret also made in the plugin: provisioning, enrollment,
// rotation, lock and unlock. It is the hub's Accounts and Enroller on an
// external mosquitto. The registry is written first: a change the plugin
// refuses is returned as an error, and Sync mends what is left behind.
//
// The plugin keeps one secret per user, so a totem has two usernames
// (protocol.TotemUsernames: its id, and its id with ".b"), both with the
// totem's role and client id. A rotation (RotateUser) gives the new
// secret to the username the totem does not log in with: the old user
// keeps the old secret, as the embedded broker keeps both, until the
// totem is seen online as the new user (SeenAs) or the old secret expires
// (ExpireOverlaps); then the old user is deleted. Given records which
// secret (the registry's hash) each username holds: the one holding the
// registry's current hash is the totem's current user, the one holding
// its pending hash (broker.User.Next) the new one.
type Mirror struct {
	Reg   *broker.Registry
	C     *Client
	Log   *slog.Logger
	Given *Given // may be nil: then a provisioned secret is always given again, and rotations are one step

	mu      sync.Mutex
	pending map[string]string // one-step rotations recorded, not yet given to the broker: totem → secret
	seen    map[string]bool   // totems whose confirmation (SeenAs) runs
	idle    *sync.Cond        // on mu: seen emptied

	users sync.Mutex // serialises the changes of a totem's two usernames
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
	m.users.Lock()
	defer m.users.Unlock()
	if _, err := m.C.EnsureUser(ctx, u); err != nil {
		return creds.File{}, fmt.Errorf("dynsec: provision %s: %w", username, err)
	}
	if err := m.given(username); err != nil {
		return creds.File{}, err
	}
	if role == creds.RoleTotem {
		// New credentials name the totem's id: its other username, with
		// a secret of before, goes (unless it holds a rotation pending).
		if err := m.tidy(ctx, username); err != nil {
			return creds.File{}, fmt.Errorf("dynsec: provision %s: %w", username, err)
		}
	}
	return f, nil
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
	m.users.Lock()
	defer m.users.Unlock()
	if _, err := m.C.EnsureUser(ctx, User{Username: totem, Role: creds.RoleTotem, Password: f.Password}); err != nil {
		m.Log.Error("enrollment not given to the broker", "totem", totem, "err", err)
		return creds.File{}, &enroll.Error{Reason: enroll.ReasonInternal, Msg: "the broker could not be told of the new credentials"}
	}
	if err := m.given(totem); err != nil {
		m.Log.Error("secret given not recorded", "totem", totem, "err", err)
	}
	// The enrolled credentials name the totem's id: its other username
	// and the secret it held go.
	if err := m.tidy(ctx, totem); err != nil {
		m.Log.Error("the totem's other username not removed from the broker", "totem", totem, "err", err)
	}
	return f, nil
}

// Rotate is the one-step rotation of a totem that names no username in
// its request (older totems, which always log in with their id): it
// records the next secret in the registry and keeps it until
// CommitRotation, which replaces the user's secret in the plugin (which
// ends the client's connections, so it is told only once the hub's reply
// is on its way). The old secret stops there: RotateUser does not.
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
// the old one there, and confirms the rotation in the registry. The
// secret goes to the totem's username that holds the current one: its id,
// or its other username for a totem whose firmware went back to a version
// that names none after it rotated to it.
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
	m.users.Lock()
	defer m.users.Unlock()
	user := username
	if u, found, err := m.Reg.Get(username); err == nil && found && m.Given != nil {
		for _, n := range protocol.TotemUsernames(username) {
			if h := m.Given.Hash(n); h != "" && h == u.Hash {
				user = n
			}
		}
	}
	if err := m.C.SetPassword(ctx, user, pw); err != nil {
		return fmt.Errorf("dynsec: rotate %s: %w", username, err)
	}
	if _, err := m.Reg.ConfirmRotation(username, now); err != nil {
		return err
	}
	u, found, err := m.Reg.Get(username)
	if err != nil || !found {
		return err
	}
	return m.Given.Put(user, u.Hash)
}

// RotateUser records totem's next secret in the registry and gives it to
// the totem's username other than current (the one it logs in with now),
// before the hub's reply: the old user and its secret stay as they are, so
// a totem that dies before it saved the new secret, or never reads the
// reply, still logs in with the old one. It returns the username to
// present with the new secret. A request from the user that holds a
// pending rotation's secret first confirms that rotation (SeenAs).
func (m *Mirror) RotateUser(totem, current, password string, now time.Time) (time.Time, time.Time, string, error) {
	if id, ok := protocol.UsernameTotem(current); !ok || id != totem {
		return time.Time{}, time.Time{}, "", fmt.Errorf("dynsec: rotate %s: not one of its usernames", totem)
	}
	if m.Given == nil { // which user holds what is not known: one step
		exp, at, err := m.Rotate(totem, password, now)
		return exp, at, "", err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	m.users.Lock()
	defer m.users.Unlock()
	if _, err := m.confirm(ctx, totem, current, now); err != nil {
		return time.Time{}, time.Time{}, "", err
	}
	exp, at, err := m.Reg.Rotate(totem, password, now)
	if err != nil {
		return exp, at, "", err
	}
	u, _, err := m.Reg.Get(totem)
	if err != nil {
		return exp, at, "", err
	}
	next := protocol.OtherUsername(current)
	if _, err := m.C.EnsureUser(ctx, User{Username: next, Role: creds.RoleTotem, Password: password, Disabled: m.locked(totem)}); err != nil {
		return exp, at, "", fmt.Errorf("dynsec: rotate %s: %w", totem, err)
	}
	if err := m.Given.Put(next, u.Next); err != nil {
		return exp, at, "", err
	}
	return exp, at, next, nil
}

// SeenAs hears that totem is online as username (the hub's ingest, from
// its presence). If username holds the secret of a rotation pending, the
// rotation is confirmed, on its own goroutine: the totem's other user,
// with the old secret, is deleted from the plugin, and the registry makes
// the new secret the current one.
func (m *Mirror) SeenAs(totem, username string) {
	if m.Given == nil {
		return
	}
	u, ok, err := m.Reg.Get(totem)
	if err != nil || !ok || u.Next == "" || m.Given.Hash(username) != u.Next {
		return
	}
	m.mu.Lock()
	if m.seen[totem] {
		m.mu.Unlock()
		return
	}
	if m.seen == nil {
		m.seen = make(map[string]bool)
	}
	m.seen[totem] = true
	m.mu.Unlock()
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.seen, totem)
			if len(m.seen) == 0 && m.idle != nil {
				m.idle.Broadcast()
			}
			m.mu.Unlock()
		}()
		ctx, cancel := m.ctx()
		defer cancel()
		m.users.Lock()
		defer m.users.Unlock()
		if _, err := m.confirm(ctx, totem, username, time.Now()); err != nil {
			m.Log.Error("rotation not confirmed in the broker: the old username stays until the totem's next login or its expiry",
				"totem", totem, "err", err)
		}
	}()
}

// Wait waits until no confirmation SeenAs started runs.
func (m *Mirror) Wait() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idle == nil {
		m.idle = sync.NewCond(&m.mu)
	}
	for len(m.seen) > 0 {
		m.idle.Wait()
	}
}

// ExpireOverlaps ends the rotations whose old secret expired by now
// without the totem being seen as its new user, as the embedded broker
// refuses an expired secret: the old user is deleted and the new secret
// confirmed. The hub calls it periodically. It returns the totems done.
func (m *Mirror) ExpireOverlaps(now time.Time) ([]string, error) {
	if m.Given == nil {
		return nil, nil
	}
	list, err := m.Reg.Credentials()
	if err != nil {
		return nil, err
	}
	var done []string
	for _, c := range list {
		if c.Role != creds.RoleTotem || !c.Pending || c.Expires.IsZero() || now.Before(c.Expires) {
			continue
		}
		ok, err := m.expireOverlap(c.Username, now)
		if err != nil {
			return done, err
		}
		if ok {
			done = append(done, c.Username)
		}
	}
	return done, nil
}

func (m *Mirror) expireOverlap(totem string, now time.Time) (bool, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	m.users.Lock()
	defer m.users.Unlock()
	u, ok, err := m.Reg.Get(totem)
	if err != nil || !ok || u.Next == "" || u.Expires.IsZero() || now.Before(u.Expires) {
		return false, err
	}
	for _, n := range protocol.TotemUsernames(totem) {
		if m.Given.Hash(n) == u.Next {
			ok, err := m.confirm(ctx, totem, n, now)
			if ok {
				m.Log.Info("rotation overlap over: the old secret expired, its username removed from the broker", "totem", totem)
			}
			return ok, err
		}
	}
	return false, nil
}

// confirm makes the rotation pending whose secret username holds the
// totem's only one: the other username is deleted from the plugin (which
// ends its connections), then the registry confirms the new secret. It
// reports false, doing nothing, when username holds no rotation pending.
// Called with users.
func (m *Mirror) confirm(ctx context.Context, totem, username string, now time.Time) (bool, error) {
	u, ok, err := m.Reg.Get(totem)
	if err != nil || !ok || u.Next == "" || m.Given.Hash(username) != u.Next {
		return false, err
	}
	old := protocol.OtherUsername(username)
	if err := m.C.DeleteClient(ctx, old); err != nil {
		return false, fmt.Errorf("dynsec: end %s's old username: %w", totem, err)
	}
	if err := m.Given.Delete(old); err != nil {
		return false, err
	}
	if _, err := m.Reg.ConfirmRotation(totem, now); err != nil {
		return false, err
	}
	m.Log.Info("rotation confirmed: the totem logs in with its new username, the old one is removed from the broker", "totem", totem,
		"username", username)
	return true, nil
}

// tidy deletes from the plugin totem's usernames that hold neither its
// current secret nor a rotation's pending one. Called with users.
func (m *Mirror) tidy(ctx context.Context, totem string) error {
	u, ok, err := m.Reg.Get(totem)
	if err != nil || !ok {
		return err
	}
	for _, n := range protocol.TotemUsernames(totem) {
		if h := m.Given.Hash(n); n == totem || h == u.Hash || u.Next != "" && h == u.Next {
			continue
		}
		if err := m.C.DeleteClient(ctx, n); err != nil {
			return err
		}
		if err := m.Given.Delete(n); err != nil {
			return err
		}
	}
	return nil
}

// names are the plugin's usernames of the registry's username: a totem's
// two, anyone else's one.
func (m *Mirror) names(username string) []string {
	if role, ok := m.Reg.Lookup(username); ok && role == creds.RoleTotem {
		n := protocol.TotemUsernames(username)
		return n[:]
	}
	return []string{username}
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
// plugin, which ends its connections: a totem under both its usernames.
func (m *Mirror) LockUser(username, from string, now time.Time) error {
	if err := m.Reg.LockUser(username, from, now); err != nil {
		return err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	m.users.Lock()
	defer m.users.Unlock()
	var first error
	found := 0
	for _, n := range m.names(username) {
		err := m.C.Disable(ctx, n)
		switch {
		case err == nil:
			found++
		case Is(err, ReasonClientNotFound):
			if first == nil {
				first = err
			}
		default:
			return fmt.Errorf("dynsec: lock %s: %w", username, err)
		}
	}
	if found == 0 {
		return fmt.Errorf("dynsec: lock %s: %w", username, first)
	}
	return nil
}

// Unlock lifts username's lock in the registry and enables it in the
// plugin (a totem under both its usernames).
func (m *Mirror) Unlock(username string) (broker.Lock, bool, error) {
	was, ok, err := m.Reg.Unlock(username)
	if err != nil {
		return was, ok, err
	}
	ctx, cancel := m.ctx()
	defer cancel()
	m.users.Lock()
	defer m.users.Unlock()
	for _, n := range m.names(username) {
		if err := m.C.Enable(ctx, n); err != nil && !Is(err, ReasonClientNotFound) {
			return was, ok, fmt.Errorf("dynsec: unlock %s: %w", username, err)
		}
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
