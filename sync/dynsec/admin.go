package dynsec

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aslcns/totem/sync/creds"
)

// SetDefaults makes the plugin refuse what no role allows: publishing,
// receiving and subscribing (unsubscribing stays allowed). mosquitto's own
// default lets every client receive whatever it subscribed to.
func (c *Client) SetDefaults(ctx context.Context) error {
	_, err := c.Do(ctx, Command{"command": "setDefaultACLAccess", "acls": []map[string]any{
		{"acltype": PublishSend, "allow": false},
		{"acltype": PublishReceive, "allow": false},
		{"acltype": "subscribe", "allow": false},
		{"acltype": "unsubscribe", "allow": true},
	}})
	return err
}

// GetRole returns the role called name, if the plugin has it.
func (c *Client) GetRole(ctx context.Context, name string) (Role, bool, error) {
	d, ok, err := get[struct {
		Role Role `json:"role"`
	}](ctx, c, Command{"command": "getRole", "rolename": name}, ReasonRoleNotFound)
	return d.Role, ok, err
}

// get runs cmd, a get command, and decodes its answer into a T (a struct
// around the object); false when the plugin answers reason notFound.
func get[T any](ctx context.Context, c *Client, cmd Command, notFound string) (T, bool, error) {
	var zero, d T
	rs, err := c.Do(ctx, cmd)
	if Is(err, notFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, err
	}
	if err := json.Unmarshal(rs[0].Data, &d); err != nil {
		return zero, false, fmt.Errorf("dynsec: %s: %w", cmd["command"], err)
	}
	return d, true, nil
}

// EnsureRole creates r, or brings an existing role's ACLs to r's: missing
// ones added, others removed.
func (c *Client) EnsureRole(ctx context.Context, r Role) error {
	_, err := c.Do(ctx, Command{"command": "createRole", "rolename": r.Name, "acls": r.ACLs})
	if !Is(err, ReasonRoleExists) {
		return err
	}
	have, _, err := c.GetRole(ctx, r.Name)
	if err != nil {
		return err
	}
	key := func(a ACL) ACL { return ACL{Type: a.Type, Topic: a.Topic, Allow: a.Allow, Priority: a.Priority} }
	want := make(map[ACL]bool, len(r.ACLs))
	for _, a := range r.ACLs {
		want[key(a)] = true
	}
	var cmds []Command
	for _, a := range have.ACLs {
		if !want[key(a)] {
			cmds = append(cmds, Command{"command": "removeRoleACL", "rolename": r.Name, "acltype": a.Type, "topic": a.Topic})
		}
		delete(want, key(a))
	}
	for _, a := range r.ACLs {
		if want[key(a)] {
			cmds = append(cmds, Command{"command": "addRoleACL", "rolename": r.Name, "acltype": a.Type, "topic": a.Topic,
				"allow": a.Allow, "priority": a.Priority})
		}
	}
	_, err = c.Do(ctx, cmds...)
	return err
}

// ClientInfo is what the plugin says of a client.
type ClientInfo struct {
	Username string `json:"username"`
	ClientID string `json:"clientid,omitempty"`
	Roles    []struct {
		Name string `json:"rolename"`
	} `json:"roles"`
	Disabled bool `json:"disabled,omitempty"`
}

// GetClient returns the client called username, if the plugin has it.
func (c *Client) GetClient(ctx context.Context, username string) (ClientInfo, bool, error) {
	d, ok, err := get[struct {
		Client ClientInfo `json:"client"`
	}](ctx, c, Command{"command": "getClient", "username": username}, ReasonClientNotFound)
	return d.Client, ok, err
}

// User is a broker user as the plugin should have it.
type User struct {
	Username string
	Role     string // creds.Role* or "enroll"
	Password string // "" = unknown: an existing client keeps its own
	// KeepSecret: Password only for a client created; an existing one
	// keeps its own (setting it would end the client's connections).
	KeepSecret bool
	Disabled   bool
}

// clientID is the client id a user must connect with: a totem's is its
// id (under either of its usernames), as the embedded broker requires;
// the others may use any.
func (u User) clientID() string {
	if u.Role == creds.RoleTotem {
		return totemOf(u.Username)
	}
	return ""
}

// EnsureUser creates u's client (and its own role), or brings an existing
// one to u: roles, client id, enabled or disabled, and the secret when
// u.Password is set. It reports whether the client was created.
func (c *Client) EnsureUser(ctx context.Context, u User) (created bool, err error) {
	roles := RolesOf(u.Username, u.Role)
	if roles == nil {
		return false, fmt.Errorf("dynsec: user %s: unknown role %q", u.Username, u.Role)
	}
	if own, ok := OwnRole(u.Username, u.Role); ok {
		if err := c.EnsureRole(ctx, own); err != nil {
			return false, err
		}
	}
	rl := make([]map[string]any, len(roles))
	for i, r := range roles {
		rl[i] = map[string]any{"rolename": r}
	}
	create := Command{"command": "createClient", "username": u.Username, "roles": rl}
	if u.Password != "" {
		create["password"] = u.Password
	}
	if id := u.clientID(); id != "" {
		create["clientid"] = id
	}
	_, err = c.Do(ctx, create)
	switch {
	case err == nil:
		created = true
		if u.Disabled {
			_, err = c.Do(ctx, Command{"command": "disableClient", "username": u.Username})
		}
		return created, err
	case !Is(err, ReasonClientExists):
		return false, err
	}
	have, _, err := c.GetClient(ctx, u.Username)
	if err != nil {
		return false, err
	}
	var cmds []Command
	if u.Password != "" && !u.KeepSecret {
		cmds = append(cmds, Command{"command": "setClientPassword", "username": u.Username, "password": u.Password})
	}
	if id := u.clientID(); have.ClientID != id {
		cmds = append(cmds, Command{"command": "setClientId", "username": u.Username, "clientid": id})
	}
	want := make(map[string]bool, len(roles))
	for _, r := range roles {
		want[r] = true
	}
	for _, r := range have.Roles {
		if !want[r.Name] {
			cmds = append(cmds, Command{"command": "removeClientRole", "username": u.Username, "rolename": r.Name})
		}
		delete(want, r.Name)
	}
	for _, r := range roles {
		if want[r] {
			cmds = append(cmds, Command{"command": "addClientRole", "username": u.Username, "rolename": r})
		}
	}
	if u.Disabled != have.Disabled {
		cmd := "enableClient"
		if u.Disabled {
			cmd = "disableClient"
		}
		cmds = append(cmds, Command{"command": cmd, "username": u.Username})
	}
	_, err = c.Do(ctx, cmds...)
	return false, err
}

// SetPassword gives username a new secret.
func (c *Client) SetPassword(ctx context.Context, username, password string) error {
	_, err := c.Do(ctx, Command{"command": "setClientPassword", "username": username, "password": password})
	return err
}

// Disable refuses username's logins from now on, and ends its connections.
func (c *Client) Disable(ctx context.Context, username string) error {
	_, err := c.Do(ctx, Command{"command": "disableClient", "username": username})
	return err
}

// Enable lets username log in again.
func (c *Client) Enable(ctx context.Context, username string) error {
	_, err := c.Do(ctx, Command{"command": "enableClient", "username": username})
	return err
}

// DeleteClient removes username's client, which ends its connections,
// and keeps its roles; a client the plugin does not have is no error.
func (c *Client) DeleteClient(ctx context.Context, username string) error {
	_, err := c.Do(ctx, Command{"command": "deleteClient", "username": username})
	if Is(err, ReasonClientNotFound) {
		return nil
	}
	return err
}

// Delete removes username's client and its own role, if any.
func (c *Client) Delete(ctx context.Context, username, role string) error {
	_, err := c.Do(ctx, Command{"command": "deleteClient", "username": username})
	if err != nil && !Is(err, ReasonClientNotFound) {
		return err
	}
	if own, ok := OwnRole(username, role); ok {
		if _, err := c.Do(ctx, Command{"command": "deleteRole", "rolename": own.Name}); err != nil && !Is(err, ReasonRoleNotFound) {
			return err
		}
	}
	return nil
}
