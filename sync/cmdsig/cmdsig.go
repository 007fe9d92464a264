// Package cmdsig authorises console commands: Ed25519 signatures over a
// canonical encoding of the command, the roles that may run each command,
// the consoles' key files, and a Verifier that refuses unsigned, forged,
// misdirected, expired, replayed and out-of-role commands before anything
// runs them.
//
// A command names its target (a totem id, or HubTarget for the hub), a
// random id that is also its nonce, its name and arguments, the role it is
// run with, the key that signed it, when it was issued and when it expires.
// The signature covers all of them.
package cmdsig

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// Roles a console key can have. Ops can run everything a technician can.
const (
	Technician = "technician"
	Ops        = "ops"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return rank(r) > 0 }

func rank(r string) int {
	switch r {
	case Technician:
		return 1
	case Ops:
		return 2
	}
	return 0
}

// HubTarget is the target of the hub's own commands (on
// protocol.HubCmdTopic). It cannot be a totem id, so a command signed for
// the hub is never valid at a totem and the other way round.
const HubTarget = protocol.HubRoot

// The role each command needs, in one place; docs/protocol.md has the same
// table. A command missing here is refused.
var (
	totemRoles = map[string]string{
		"ping":          Technician,
		"status":        Technician,
		"jobs":          Technician,
		"sendlog":       Technician,
		"sendlog_print": Technician, // the elenco invii on paper, no payloads
		"reprint":       Technician,
		"resend":        Technician, // same op id again: the hub dedups
		"resync":        Technician, // adopts the hub's record, which wins anyway
		"correct":       Ops,        // a variation: changes data at the CMS
		"cancel":        Ops,        // a variation: changes data at the CMS
		"refund":        Ops,        // gives the reader fee back: money
		"void":          Ops,        // gives an operation up: the hub records OP_VOID
		"config_get":    Ops,        // the configuration in force, secrets redacted
		"config_set":    Ops,        // changes the configuration file, applied live where it can be
	}
	// linkRoles are the totem commands its uplink answers itself, not
	// the firmware: Test credenziali (totemctl cmd T test-credentials).
	linkRoles = map[string]string{
		"test_credentials": Technician,
	}
	hubRoles = map[string]string{
		"sendlog":      Technician,
		"sendlog_show": Technician,
		"report":       Ops, // the fleet's Reportistica, by operator
		"locks":        Technician,
		"credentials":  Technician, // users' expiry and locks
		"unlock":       Ops,        // lifts a broker user's lock (8 failed authentications)
		"lock":         Ops,        // locks a broker user (a stolen totem) until unlock
		"enroll":       Ops,        // issues a totem's enrollment code
		"fleet":        Technician, // the fleet registry: presence, backlog, devices
		"job_create":   Ops,        // a fleet update job (sync/update/rollout)
		"job_status":   Ops,
		"job_cancel":   Ops,
		// The technician set (maintenance mode at the panel): enrolling
		// and removing gives or takes a totem's panel, listing shows
		// names; an unlock code opens one totem once, for 15 minutes.
		"technician_add":         Ops,
		"technician_list":        Ops,
		"technician_remove":      Ops,
		"technician_unlock_code": Technician,
		// The central audit (sync/audit): reading it and checking its
		// chain are ops' (it records the technicians' actions too);
		// adding an entry (a maintenance step done by hand) any
		// console's, always under its own name.
		"audit":        Ops,
		"audit_verify": Ops,
		"audit_add":    Technician,
	}
)

// Needs returns the role the command name needs at target, and false for a
// command the target does not know.
func Needs(target, name string) (string, bool) {
	t := totemRoles
	if target == HubTarget {
		t = hubRoles
	}
	r, ok := t[name]
	if !ok && target != HubTarget {
		r, ok = linkRoles[name]
	}
	return r, ok
}

// LinkCommands returns the totem commands the uplink answers (not in
// Commands, which are the firmware's) with the role each needs.
func LinkCommands() map[string]string {
	out := make(map[string]string, len(linkRoles))
	for k, v := range linkRoles {
		out[k] = v
	}
	return out
}

// Commands returns the command names of target with the role each needs;
// for a totem, those its firmware answers (see LinkCommands).
func Commands(target string) map[string]string {
	t := totemRoles
	if target == HubTarget {
		t = hubRoles
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

// domain separates these signatures from any other use of the same key.
const domain = "totem-cmd-sig/1"

// Canonical returns the bytes a command's signature covers: each field
// length-prefixed, the arguments sorted by name, times as Unix nanoseconds.
// Nothing in it depends on JSON encoding.
func Canonical(c *protocol.Command) []byte {
	b := make([]byte, 0, 256)
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str(domain)
	str(c.To)
	str(c.ID)
	str(c.Name)
	str(c.Role)
	str(c.Key)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Issued.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires.UnixNano()))
	keys := make([]string, 0, len(c.Args))
	for k := range c.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		str(k)
		str(c.Args[k])
	}
	return b
}

// Sign fills c's target, role, key, validity and signature. role "" is the
// key's own; a lower role may be asked for (least privilege), a higher one
// not.
func Sign(k PrivateKey, c *protocol.Command, target, role string, issued time.Time, ttl time.Duration) error {
	if role == "" {
		role = k.Role
	}
	if rank(role) == 0 || rank(role) > rank(k.Role) {
		return fmt.Errorf("cmdsig: key %s (%s) cannot sign as %q", k.ID, k.Role, role)
	}
	c.To, c.Role, c.Key = target, role, k.ID
	c.Issued = issued.Round(0).UTC()
	c.Expires = c.Issued.Add(ttl)
	c.Sig = ed25519.Sign(k.Key, Canonical(c))
	return nil
}
