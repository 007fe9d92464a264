package dynsec

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
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
}

// Sync brings the plugin in line with the registry, and is idempotent:
// default ACL access denied, the fixed roles, the enroll user (its secret
// is public), and every registry user with its own role, client id and
// lock (disabled when locked, enabled otherwise). A user the plugin does
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
		u := User{Username: cr.Username, Role: cr.Role, Disabled: cr.Locked, KeepSecret: true}
		var hash string
		if credentialsDir != "" {
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
	}
	return rep, nil
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
