package dynsec

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
)

// Report is what a Sync did.
type Report struct {
	Created  []string `json:"created,omitempty"`  // clients the plugin did not have
	Updated  int      `json:"updated"`            // clients brought in line (roles, client id, lock)
	Disabled []string `json:"disabled,omitempty"` // locked in the registry
	// NoSecret are users created without a secret: the registry keeps
	// only hashes, and no credentials file in credentials_dir holds their
	// current one. They cannot log in until provisioned or enrolled again.
	NoSecret []string `json:"no_secret,omitempty"`
	// Secrets are existing clients given the secret of their credentials
	// file, which changed since the plugin was last given one.
	Secrets []string `json:"secrets,omitempty"`
	// Deleted are totems' usernames (protocol.TotemUsernames) holding a
	// secret that is neither the current one nor a rotation's pending
	// one: a rotation confirmed, or the totem provisioned or enrolled
	// again, while the plugin was not told.
	Deleted []string `json:"deleted,omitempty"`
}

// Sync brings the plugin in line with the registry, and is idempotent:
// default ACL access denied, the fixed roles, the enroll user (its secret
// is public), and every registry user with its own role, client id and
// lock (disabled when locked, enabled otherwise); for a totem, the
// username holding its current secret and the one holding a rotation's
// pending secret (Mirror), and its other username deleted. A user the plugin does
// not have is created with the secret of credentials_dir/NAME.json when
// that file holds the registry's current one; an existing client is given
// that secret only when given (may be nil) does not record it as given
// already, and keeps its own otherwise. Clients the registry does not
// know (the dynsec admin) are left alone.
func Sync(ctx context.Context, c *Client, reg *broker.Registry, credentialsDir string, given *Given) (Report, error) {
	var rep Report
	if err := c.SetDefaults(ctx); err != nil {
		return rep, err
	}
	for _, r := range FixedRoles() {
		if err := c.EnsureRole(ctx, r); err != nil {
			return rep, err
		}
	}
	if _, err := c.EnsureUser(ctx, User{Username: enroll.Username, Role: roleEnroll, Password: enroll.Password}); err != nil {
		return rep, err
	}
	users, err := reg.Credentials()
	if err != nil {
		return rep, err
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Username < users[j].Username })
	for _, cr := range users {
		name, pend, stale := cr.Username, "", []string(nil)
		if cr.Role == creds.RoleTotem && given != nil {
			name, pend, stale = totemUsers(reg, given, cr.Username)
		}
		u := User{Username: name, Role: cr.Role, Disabled: cr.Locked, KeepSecret: true}
		var hash string
		if credentialsDir != "" && name == cr.Username {
			u.Password, hash = knownSecret(reg, filepath.Join(credentialsDir, cr.Username+".json"), cr.Username, cr.Role)
		}
		u.KeepSecret = given == nil || given.Hash(u.Username) == hash
		created, err := c.EnsureUser(ctx, u)
		if err != nil {
			return rep, err
		}
		if u.Password != "" && (created || !u.KeepSecret) {
			if err := given.Put(u.Username, hash); err != nil {
				return rep, err
			}
			if !created {
				rep.Secrets = append(rep.Secrets, u.Username)
			}
		}
		if created {
			rep.Created = append(rep.Created, u.Username)
			if u.Password == "" {
				rep.NoSecret = append(rep.NoSecret, u.Username)
			}
		} else {
			rep.Updated++
		}
		if u.Disabled {
			rep.Disabled = append(rep.Disabled, u.Username)
		}
		if pend != "" {
			// A rotation's new user: its roles and lock, its own secret.
			if _, err := c.EnsureUser(ctx, User{Username: pend, Role: cr.Role, Disabled: cr.Locked, KeepSecret: true}); err != nil {
				return rep, err
			}
		}
		for _, n := range stale {
			if err := c.DeleteClient(ctx, n); err != nil {
				return rep, err
			}
			if err := given.Delete(n); err != nil {
				return rep, err
			}
			rep.Deleted = append(rep.Deleted, n)
		}
	}
	return rep, nil
}

// totemUsers tells which of totem's usernames holds its current secret
// (its id when given records none), which a rotation's pending one, and
// which were given a secret that is neither.
func totemUsers(reg *broker.Registry, given *Given, totem string) (cur, pend string, stale []string) {
	u, ok, err := reg.Get(totem)
	if err != nil || !ok {
		return totem, "", nil
	}
	names := protocol.TotemUsernames(totem)
	for _, n := range names {
		switch h := given.Hash(n); {
		case h == "":
		case h == u.Hash:
			cur = n
		case u.Next != "" && h == u.Next:
			pend = n
		}
	}
	if cur == "" {
		cur = totem
		if pend == totem {
			cur = protocol.OtherUsername(totem)
		}
	}
	for _, n := range names {
		if n != cur && n != pend && given.Hash(n) != "" {
			stale = append(stale, n)
		}
	}
	return cur, pend, stale
}

// knownSecret returns the secret of the credentials file at path and the
// registry's hash of it if it is username's current one, and "" otherwise
// (no file, another user's, an older secret, or a rotation pending).
func knownSecret(reg *broker.Registry, path, username, role string) (password, hash string) {
	f, err := creds.Load(path)
	if err != nil || f.Username != username || f.Role != role {
		return "", ""
	}
	u, ok, err := reg.Get(username)
	if err != nil || !ok || u.Next != "" {
		return "", ""
	}
	if match, err := creds.Verify(u.Hash, f.Password); err != nil || !match {
		return "", ""
	}
	return f.Password, u.Hash
}
