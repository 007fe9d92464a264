package broker

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/aslcns/totem/internal/lograte"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
)

// maxTopic bounds every topic or filter the ACL looks at; the longest
// legitimate one is well under 100 bytes.
const maxTopic = 256

// Retained messages: the protocol retains presence (state), telemetry and
// the consent policy, one message per totem each; anything else published
// with the retain flag, or a retained message larger than maxRetained, is
// refused (docs/protocol.md), so no client can park data in the broker.
const maxRetained = 16 << 10

// maxSessionExpiry caps, in seconds, how long the broker keeps the session
// of a totem that went away (MQTT 5 session expiry interval; MQTT 3
// persistent sessions too). Consoles and hubs keep none: a session left
// behind holds the messages of its subscriptions, and a console could
// otherwise leave any number of them. The fleet's clients all start clean
// and keep no session, so neither limit changes anything for them.
const maxSessionExpiry = 24 * 60 * 60

// authHook authenticates every connection and applies the role ACL. It runs
// on the clients' goroutines, so everything it does is a map lookup, a
// string comparison or (at connect only) an Authenticator call.
type authHook struct {
	mqtt.HookBase
	auth  Authenticator
	srv   *mqtt.Server
	log   *slog.Logger
	stats *counters
	lim   *lograte.Limiter
	// enroll, when set, admits the enroll user (enrolluser.go).
	enroll *enrollGate
	// takeoverWait bounds how long a connection taking over a client id
	// waits for the previous connection to end (retire).
	takeoverWait time.Duration

	// roles maps usernames to the role they authenticated with. It is
	// keyed by username, not by client, so it is bounded by the number of
	// users and needs no clean-up on disconnect or session takeover.
	mu    sync.RWMutex
	roles map[string]string

	// admitted holds the clients OnConnect let in, until mochi asks
	// OnConnectAuthenticate about them.
	admitted sync.Map // *mqtt.Client → struct{}
}

var _ mqtt.Hook = (*authHook)(nil)

func (h *authHook) ID() string { return "totem-auth" }

// Provides declares the only events the hook handles.
func (h *authHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPacketRead,
		mqtt.OnPacketEncode, mqtt.OnDisconnect, mqtt.OnSessionEstablish:
		return true
	}
	return false
}

// OnConnect decides every connection. mochi answers a refusal from
// OnConnectAuthenticate with 0x86 (bad user name or password) whatever
// the reason, and a client cannot tell a wrong secret, which it should
// not retry, from a refusal it may outlive; so the hook answers itself,
// with the precise code, and returns it to end the connection:
//   - 0x86 only when the credentials are wrong: anonymous, unknown user,
//     wrong secret; and, with the reason string codeExpired's, the right
//     secret past its expiry;
//   - 0x8A (banned), reason string codeLocked's, for a user the registry
//     locked after MaxFailures failed authentications in a row, and to
//     the failure that locks it: the secret is not looked at, and the
//     attempt is not counted, until ops unlocks the user or gives it a
//     new secret (MQTT 3 clients, which have no such code, get 0x86's);
//   - 0x85 (client identifier not valid) for a totem whose client id is
//     not its name, a client id that is a registered totem's name used
//     by any other user (a totem's id is reserved to it, even offline),
//     and a client id whose session belongs to another user;
//   - 0x87 (not authorised) for a Last Will topic the user may not
//     publish to (mochi does not check them);
//   - 0x9A (retain not supported) for a retained Last Will where the
//     protocol retains nothing.
//
// Credentials are checked first, so an unauthenticated client learns
// nothing about which ids are registered.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	user := string(pk.Connect.Username)
	code, reason, topic := h.admit(cl, pk)
	if code == packets.CodeSuccess {
		h.admitted.Store(cl, struct{}{})
		return nil
	}
	switch code {
	case packets.ErrBadUsernameOrPassword:
		h.stats.badCredentials.Add(1)
	case codeExpired:
		h.stats.expiredRefused.Add(1)
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrBadUsernameOrPassword
		}
	case codeLocked:
		h.stats.lockedRefused.Add(1)
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrBadUsernameOrPassword
		}
	case packets.ErrClientIdentifierNotValid:
		h.stats.clientIDRefused.Add(1)
	case packets.ErrNotAuthorized:
		h.stats.notAuthorized.Add(1)
	case packets.ErrConnectionRateExceeded:
		h.stats.enrollRateRefused.Add(1)
	case packets.ErrRetainNotSupported:
		h.stats.retainRefusedCon.Add(1)
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrNotAuthorized // MQTT 3 has no such CONNACK code
		}
	}
	h.refuse(cl, user, topic, reason)
	_ = h.srv.SendConnack(cl, code, false, nil)
	return code
}

func (h *authHook) admit(cl *mqtt.Client, pk packets.Packet) (code packets.Code, reason, topic string) {
	user := string(pk.Connect.Username)
	if user == "" {
		return packets.ErrBadUsernameOrPassword, "anonymous", ""
	}
	if user == enroll.Username && h.enroll != nil {
		if code, reason := h.admitEnroll(cl, pk); code != packets.CodeSuccess {
			return code, reason, ""
		}
		h.stats.enrollConnections.Add(1)
		cl.Properties.Clean = true
		cl.Properties.Props.SessionExpiryInterval = 0
		h.mu.Lock()
		h.roles[user] = roleEnroll
		h.mu.Unlock()
		return packets.CodeSuccess, "", ""
	}
	role, out := h.authenticate(cl, user, string(pk.Connect.Password))
	switch out {
	case Rejected:
		return packets.ErrBadUsernameOrPassword, "bad_credentials", ""
	case Refused:
		return codeLocked, "locked", ""
	case Expired:
		return codeExpired, "expired", ""
	}
	if cl.ID != user {
		if role == creds.RoleTotem {
			return packets.ErrClientIdentifierNotValid, "client_id_mismatch", ""
		}
		if r, ok := h.auth.Lookup(cl.ID); ok && r == creds.RoleTotem {
			return packets.ErrClientIdentifierNotValid, "client_id_reserved", ""
		}
	}
	if pk.Connect.WillFlag {
		if !allowed(role, user, pk.Connect.WillTopic, true) {
			return packets.ErrNotAuthorized, "will_not_allowed", pk.Connect.WillTopic
		}
		if pk.Connect.WillRetain && !retainable(pk.Connect.WillTopic, len(pk.Connect.WillPayload)) {
			return packets.ErrRetainNotSupported, "will_retain_refused", pk.Connect.WillTopic
		}
	}
	if old, ok := h.srv.Clients.Get(cl.ID); ok {
		if !bytes.Equal(old.Properties.Username, pk.Connect.Username) {
			return packets.ErrClientIdentifierNotValid, "client_id_in_use", ""
		}
		if !old.Closed() {
			// The same user on a second connection: a totem reconnecting
			// before the broker saw the old connection go, or two boards
			// with one credential fighting over it. The old one ends
			// (retire); ops sees it counted, and in a rate-limited line.
			h.stats.takeovers.Add(1)
			h.note("session taken over", "takeover", func() []any {
				return []any{"client", h.redact(cl.ID), "username", h.redact(user)}
			})
		}
	}
	if role != creds.RoleTotem { // no session kept: see maxSessionExpiry
		cl.Properties.Clean = true // MQTT 3
		cl.Properties.Props.SessionExpiryInterval = 0
		cl.Properties.Will.WillDelayInterval = 0
	}
	h.mu.RLock()
	known := h.roles[user] == role
	h.mu.RUnlock()
	if !known {
		h.mu.Lock()
		h.roles[user] = role
		h.mu.Unlock()
	}
	return packets.CodeSuccess, "", ""
}

// OnSessionEstablish runs just before mochi takes over the session of the
// client id, if another connection holds it: that connection must first
// be gone (retire).
func (h *authHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if old, ok := h.srv.Clients.Get(cl.ID); ok && old != cl {
		h.retire(old)
	}
}

// retire ends old, the previous connection of a client id a new one is
// taking over, and waits, up to takeoverWait, until mochi is done with it.
//
// mochi (v2.7.9, server.go attachClient) ends a connection whose session
// ends with it by checking it was not taken over, and only then removing
// its subscriptions and its entry in the clients, both by client id:
//
//	s.hooks.OnDisconnect(cl, err, expire)
//	if expire && !cl.IsTakenOver() {
//		cl.ClearInflights()
//		s.UnsubscribeClient(cl)
//		s.Clients.Delete(cl.ID)
//	}
//
// and a new connection takes the session over (inheritClientSession) by
// finding the old one in the clients, marking it taken over and adding
// itself under the same id. An old connection past the check when the new
// one takes over deletes the new one's entry, and may remove the filters
// it subscribes to: the new connection stays up, subscribed, and receives
// nothing (publishToSubscribers skips an id not in the clients) until it
// reconnects, which a connection that works never does. A totem killed
// and restarted at once, or one on flaky Wi-Fi, hits it (seen: a rotation
// whose reply never reached the totem).
//
// Waiting here, in OnSessionEstablish, just before mochi looks at the
// session, the new connection finds the old one gone, or, if its session
// is kept, whole and no longer touched by its connection. The wait costs
// nothing to a client id with no earlier connection, or one long ended.
// An old connection that does not end in time (its goroutine held by a
// slow in-process subscriber, local.go) is counted and logged and the new
// one let in as mochi would: by the time the old one looks, it is marked taken over and
// leaves the session alone; only an old connection caught between the two
// steps above at that very moment could still harm it.
func (h *authHook) retire(old *mqtt.Client) {
	tc, ok := old.Net.Conn.(*trackedConn)
	if !ok { // not a network connection (a session restored, the inline client)
		return
	}
	select {
	case <-tc.ended:
		return
	default:
	}
	h.stats.takeoverWaits.Add(1)
	if !old.Closed() {
		_ = h.srv.DisconnectClient(old, packets.ErrSessionTakenOver) // [MQTT-3.1.4-3], as mochi's takeover
	}
	t := time.NewTimer(h.takeoverWait)
	defer t.Stop()
	select {
	case <-tc.ended:
	case <-t.C:
		h.stats.takeoverTimeouts.Add(1)
		h.note("previous connection still ending, new one let in", "takeover_timeout", func() []any {
			return []any{"client", h.redact(old.ID), "waited", h.takeoverWait}
		})
	}
}

// codeLocked answers a locked user. 0x8A is "banned" in MQTT 5; the reason
// string says why, and the fleet's brokers send 0x8A for nothing else, so
// a totem knows its credentials are locked (docs/protocol.md).
var codeLocked = packets.Code{Code: packets.ErrBanned.Code, Reason: "locked: too many failed authentications, ops must unlock"}

// codeExpired answers the right secret past its expiry: 0x86, as a wrong
// one, with a reason string that says so (the totem shows it, and ops must
// enroll it again); it does not count towards a lock.
var codeExpired = packets.Code{Code: packets.ErrBadUsernameOrPassword.Code, Reason: "expired: credentials past their expiry, enroll the totem again"}

// authenticate asks the Authenticator, through Check when it counts
// failures. The failure that locks a user is logged, always: the lock,
// its time and the source address are an audit record, and there is at
// most one per user until ops unlocks it.
func (h *authHook) authenticate(cl *mqtt.Client, user, password string) (string, Outcome) {
	c, ok := h.auth.(Checker)
	if !ok {
		role, ok := h.auth.Authenticate(user, password)
		if !ok {
			return "", Rejected
		}
		return role, Accepted
	}
	role, out, justLocked := c.Check(user, password, cl.Net.Remote)
	if justLocked {
		h.stats.lockouts.Add(1)
		h.log.Warn("user locked", "username", user, "failures", MaxFailures, "from", cl.Net.Remote,
			"at", time.Now().UTC().Format(time.RFC3339))
	}
	return role, out
}

// OnPacketEncode tells an MQTT 5 console or hub, in its CONNACK, that its
// session ends with the connection, whatever it asked for.
func (h *authHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != packets.CodeSuccess.Code || cl.Properties.ProtocolVersion != 5 {
		return pk
	}
	h.mu.RLock()
	role := h.roles[string(cl.Properties.Username)]
	h.mu.RUnlock()
	if role != creds.RoleTotem {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 0, true
	}
	return pk
}

// OnDisconnect forgets an enroll connection's request.
func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if h.enroll != nil {
		h.enroll.published.Delete(cl)
	}
}

// OnConnectAuthenticate lets in what OnConnect admitted.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := h.admitted.LoadAndDelete(cl)
	return ok
}

// OnACLCheck applies allowed to a subscription filter (write false), a
// delivered topic (write false) or a published topic (write true).
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	h.mu.RLock()
	role := h.roles[user]
	h.mu.RUnlock()
	if role == roleEnroll && h.enrollAllowed(cl, topic, write) || role != roleEnroll && allowed(role, user, topic, write) {
		return true
	}
	reason := "read_denied"
	if write {
		reason = "write_denied"
		h.stats.publishDenied.Add(1)
	} else {
		h.stats.subscribeDenied.Add(1)
	}
	h.refuse(cl, user, topic, reason)
	return false
}

// OnPublish refuses a retained message the protocol does not retain:
// PUBACK 0x9A to an MQTT 5 client at QoS 1 or 2, dropped at QoS 0, and
// the connection ended for an MQTT 3 client, which has no reason codes
// (as mochi does for an ACL refusal).
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || cl.Net.Inline || retainable(pk.TopicName, len(pk.Payload)) {
		return pk, nil
	}
	h.stats.retainRefused.Add(1)
	h.refuse(cl, string(cl.Properties.Username), pk.TopicName, "retain_refused")
	switch {
	case pk.FixedHeader.Qos == 0:
		return pk, packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion == 5:
		return pk, packets.ErrRetainNotSupported
	}
	_ = h.srv.DisconnectClient(cl, packets.ErrRetainNotSupported)
	return pk, packets.ErrRejectPacket
}

// OnPacketRead answers a QoS 1 or 2 publish to $SYS with 0x87: mochi
// drops it before any ACL check and never acknowledges it, so the
// publisher would wait, or resend, for ever. The packet then goes on as
// QoS 0, which mochi drops quietly.
func (h *authHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || cl.Net.Inline ||
		len(pk.TopicName) < len(mqtt.SysPrefix) || !strings.EqualFold(pk.TopicName[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
		return pk, nil
	}
	h.stats.publishDenied.Add(1)
	h.refuse(cl, string(cl.Properties.Username), pk.TopicName, "write_denied")
	if cl.Properties.ProtocolVersion < 5 {
		return pk, packets.ErrRejectPacket // ends the connection, as mochi's ACL does
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Puback},
		PacketID:    pk.PacketID,
		ReasonCode:  packets.ErrNotAuthorized.Code,
		Properties:  packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason},
	}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	_ = cl.WritePacket(ack)
	pk.FixedHeader.Qos, pk.PacketID = 0, 0
	return pk, nil
}

// retainable says whether the protocol retains a message of n bytes on
// topic: state, telemetry and policy, up to maxRetained.
func retainable(topic string, n int) bool {
	if n > maxRetained {
		return false
	}
	_, leaf, ok := split(topic)
	return ok && (leaf == protocol.LeafState || leaf == protocol.LeafTelemetry || leaf == protocol.LeafPolicy ||
		leaf == protocol.LeafTechnicians)
}

// refuse logs a refusal, rate-limited per reason: a client repeating one
// is counted (Stats), not logged each time.
func (h *authHook) refuse(cl *mqtt.Client, user, topic, reason string) {
	h.note("refused", reason, func() []any {
		return []any{"client", h.redact(cl.ID), "username", h.redact(user), "topic", h.redactTopic(topic), "reason", reason}
	})
}

// note logs msg unless the limiter holds back lines of kind; a line
// logged after some were held back says how many. args is called only
// for a line logged.
func (h *authHook) note(msg, kind string, args func() []any) {
	ok, dropped := h.lim.Allow(kind)
	if !ok {
		h.stats.logSuppressed.Add(1)
		return
	}
	a := args()
	if dropped > 0 {
		a = append(a, "suppressed", dropped)
	}
	h.log.Warn(msg, a...)
}

// redact returns s if it names a user of the fleet, and otherwise only its
// length: user names, client ids and topic levels are whatever a client
// sends, and a hostile one could send a codice fiscale or a name, which
// never reaches a log line.
func (h *authHook) redact(s string) string {
	if s == "" {
		return ""
	}
	if _, ok := h.auth.Lookup(s); ok {
		return s
	}
	return fmt.Sprintf("<%d bytes>", len(s))
}

// redactTopic keeps the levels of a topic the protocol defines and the
// users' names, and redacts the others.
func (h *authHook) redactTopic(topic string) string {
	if topic == "" {
		return ""
	}
	levels := strings.SplitN(clip(topic), "/", 16)
	for i, l := range levels {
		switch l {
		case "totem", "v1", "totemhub", "$share", "$SYS", "+", "#",
			protocol.LeafOp, protocol.LeafResult, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent,
			protocol.LeafCmd, protocol.LeafReply, protocol.LeafPolicy, protocol.LeafSync, protocol.LeafLedger,
			protocol.LeafRotate, protocol.LeafRotated, "enroll",
			protocol.LeafUpdate, protocol.LeafUpdateReq, "upload", protocol.LeafTechnicians:
		default:
			levels[i] = h.redact(l)
		}
	}
	return strings.Join(levels, "/")
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
//   - totem T: publishes totem/v1/T/{op,state,telemetry,event,sync,rotate,update_req}
//     and totem/v1/T/reply/{console}; subscribes exactly
//     totem/v1/T/{result,cmd,policy,ledger,rotated,update,technicians}.
//   - hub: publishes totem/v1/{id}/{result,policy,ledger,rotated,update,technicians}; subscribes,
//     optionally as $share/{group}/…,
//     totem/v1/{+|id}/{op,state,telemetry,event,sync,rotate,update_req};
//     the enrollment requests and their replies (enrolluser.go).
//   - console C: publishes totem/v1/{id}/cmd and its uploads
//     (protocol.HubUploadTopic(C)); subscribes
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
		case protocol.LeafOp, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent, protocol.LeafSync, protocol.LeafRotate,
			protocol.LeafUpdateReq:
			return true
		}
		console, ok := strings.CutPrefix(leaf, protocol.LeafReply+"/")
		return ok && protocol.ValidTotemID(console)
	}
	switch leaf {
	case protocol.LeafResult, protocol.LeafCmd, protocol.LeafPolicy, protocol.LeafLedger, protocol.LeafRotated, protocol.LeafUpdate,
		protocol.LeafTechnicians:
		return true
	}
	return false
}

func hubAllowed(topic string, write bool) bool {
	// The hub's own command topic: requests in, replies to any console.
	if console, ok := strings.CutPrefix(topic, protocol.HubRoot+"/reply/"); write && ok {
		return protocol.ValidTotemID(console)
	}
	if !write && (topic == protocol.HubCmdTopic || topic == protocol.SharedHubCmdTopic || topic == enroll.RequestFilter ||
		topic == protocol.SharedHubUploadFilter) {
		return true
	}
	if _, ok := enroll.RequestIDOfTopic(topic); ok && !write { // a request delivered
		return true
	}
	// Enrollment: the reply to one request.
	if rest, ok := strings.CutSuffix(topic, "/reply"); write && ok {
		if _, ok := enroll.RequestIDOfTopic(rest); ok {
			return true
		}
	}
	// Consoles' uploads: the filter, and each upload delivered.
	if console, ok := strings.CutPrefix(topic, protocol.HubUploadTopic("")); !write && ok {
		return idOrPlus(console, true)
	}
	if write {
		id, leaf, ok := split(topic)
		return ok && protocol.ValidTotemID(id) &&
			(leaf == protocol.LeafResult || leaf == protocol.LeafPolicy || leaf == protocol.LeafLedger || leaf == protocol.LeafRotated ||
				leaf == protocol.LeafUpdate || leaf == protocol.LeafTechnicians)
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
	case protocol.LeafOp, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent, protocol.LeafSync, protocol.LeafRotate,
		protocol.LeafUpdateReq:
		return true
	}
	return false
}

func consoleAllowed(user, topic string, write bool) bool {
	if !protocol.ValidTotemID(user) {
		return false
	}
	switch {
	case write && (topic == protocol.HubCmdTopic || topic == protocol.HubUploadTopic(user)):
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
