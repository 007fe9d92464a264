package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
)

// maxTopic bounds every topic or filter the ACL looks at; the longest
// legitimate one is well under 100 bytes.
const maxTopic = 256

// authHook authenticates every connection and applies the role ACL. It runs
// on the clients' goroutines, so everything it does is a map lookup, a
// string comparison or (at connect only) an Authenticator call.
type authHook struct {
	mqtt.HookBase
	auth Authenticator
	srv  *mqtt.Server
	log  *slog.Logger

	// roles maps usernames to the role they authenticated with. It is
	// keyed by username, not by client, so it is bounded by the number of
	// users and needs no clean-up on disconnect or session takeover.
	mu    sync.RWMutex
	roles map[string]string
}

var _ mqtt.Hook = (*authHook)(nil)

func (h *authHook) ID() string { return "totem-auth" }

// Provides declares the only events the hook handles.
func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate refuses anonymous clients, wrong secrets, totems
// whose client id is not their username, Last Will topics the user could
// not publish to (mochi does not check them), and client ids whose session
// belongs to another user (session takeover).
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if user == "" {
		h.refuse(cl, user, "", "anonymous")
		return false
	}
	role, ok := h.auth.Authenticate(user, string(pk.Connect.Password))
	if !ok {
		h.refuse(cl, user, "", "bad_credentials")
		return false
	}
	if role == creds.RoleTotem && cl.ID != user {
		h.refuse(cl, user, "", "client_id_mismatch")
		return false
	}
	if pk.Connect.WillFlag && !allowed(role, user, pk.Connect.WillTopic, true) {
		h.refuse(cl, user, pk.Connect.WillTopic, "will_not_allowed")
		return false
	}
	if old, ok := h.srv.Clients.Get(cl.ID); ok && !bytes.Equal(old.Properties.Username, pk.Connect.Username) {
		h.refuse(cl, user, "", "client_id_in_use")
		return false
	}
	h.mu.RLock()
	known := h.roles[user] == role
	h.mu.RUnlock()
	if !known {
		h.mu.Lock()
		h.roles[user] = role
		h.mu.Unlock()
	}
	return true
}

// OnACLCheck applies allowed to a subscription filter (write false), a
// delivered topic (write false) or a published topic (write true).
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	h.mu.RLock()
	role := h.roles[user]
	h.mu.RUnlock()
	if allowed(role, user, topic, write) {
		return true
	}
	reason := "read_denied"
	if write {
		reason = "write_denied"
	}
	h.refuse(cl, user, topic, reason)
	return false
}

func (h *authHook) refuse(cl *mqtt.Client, user, topic, reason string) {
	h.log.Warn("refused",
		"client", clip(cl.ID), "username", clip(user), "topic", clip(topic), "reason", reason)
}

// clip bounds what a hostile client can put in a log line.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// allowed is the ACL. topic is a topic name when write is true and a topic
// filter (or the name of a message being delivered) when write is false.
//
//   - totem T: publishes totem/v1/T/{op,state,telemetry,event,sync} and
//     totem/v1/T/reply/{console}; subscribes exactly
//     totem/v1/T/{result,cmd,policy,ledger}.
//   - hub: publishes totem/v1/{id}/{result,policy,ledger}; subscribes,
//     optionally as $share/{group}/…, totem/v1/{+|id}/{op,state,telemetry,event,sync}.
//   - console C: publishes totem/v1/{id}/cmd; subscribes
//     totem/v1/{+|id}/{state,telemetry,event} and totem/v1/{+|id}/reply/C.
//
// Anything else, including '#', other wildcards and $SYS, is refused.
func allowed(role, username, topic string, write bool) bool {
	if len(topic) == 0 || len(topic) > maxTopic {
		return false
	}
	switch role {
	case creds.RoleTotem:
		return totemAllowed(username, topic, write)
	case creds.RoleHub:
		return hubAllowed(topic, write)
	case creds.RoleConsole:
		return consoleAllowed(username, topic, write)
	}
	return false
}

// split cuts totem/v1/{id}/{leaf…}; leaf may hold further levels.
func split(topic string) (id, leaf string, ok bool) {
	rest, ok := strings.CutPrefix(topic, protocol.Root+"/")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}

// idOrPlus accepts a concrete totem id, or '+' when wild is true.
func idOrPlus(id string, wild bool) bool {
	return wild && id == "+" || protocol.ValidTotemID(id)
}

func totemAllowed(user, topic string, write bool) bool {
	id, leaf, ok := split(topic)
	if !ok || id != user || !protocol.ValidTotemID(user) {
		return false
	}
	if write {
		switch leaf {
		case protocol.LeafOp, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent, protocol.LeafSync:
			return true
		}
		console, ok := strings.CutPrefix(leaf, protocol.LeafReply+"/")
		return ok && protocol.ValidTotemID(console)
	}
	switch leaf {
	case protocol.LeafResult, protocol.LeafCmd, protocol.LeafPolicy, protocol.LeafLedger:
		return true
	}
	return false
}

func hubAllowed(topic string, write bool) bool {
	// The hub's own command topic: requests in, replies to any console.
	if console, ok := strings.CutPrefix(topic, protocol.HubRoot+"/reply/"); write && ok {
		return protocol.ValidTotemID(console)
	}
	if !write && (topic == protocol.HubCmdTopic || topic == protocol.SharedHubCmdTopic) {
		return true
	}
	if write {
		id, leaf, ok := split(topic)
		return ok && protocol.ValidTotemID(id) &&
			(leaf == protocol.LeafResult || leaf == protocol.LeafPolicy || leaf == protocol.LeafLedger)
	}
	if rest, ok := strings.CutPrefix(topic, "$share/"); ok {
		group, filter, ok := strings.Cut(rest, "/")
		if !ok || !protocol.ValidTotemID(group) {
			return false
		}
		topic = filter
	}
	id, leaf, ok := split(topic)
	if !ok || !idOrPlus(id, true) {
		return false
	}
	switch leaf {
	case protocol.LeafOp, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent, protocol.LeafSync:
		return true
	}
	return false
}

func consoleAllowed(user, topic string, write bool) bool {
	if !protocol.ValidTotemID(user) {
		return false
	}
	switch {
	case write && topic == protocol.HubCmdTopic:
		return true
	case !write && topic == protocol.HubReplyTopic(user):
		return true
	}
	id, leaf, ok := split(topic)
	if !ok || !idOrPlus(id, !write) {
		return false
	}
	if write {
		return leaf == protocol.LeafCmd
	}
	switch leaf {
	case protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent:
		return true
	}
	console, ok := strings.CutPrefix(leaf, protocol.LeafReply+"/")
	return ok && console == user
}
