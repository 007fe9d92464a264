package dynsec

import (
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
)

// ACL types of the plugin. Send and receive ACLs match topic names
// against the ACL's filter; subscribeLiteral matches a subscription's
// filter exactly (how wildcard subscriptions are allowed) and
// subscribePattern a concrete subscription against the ACL's filter.
const (
	PublishSend      = "publishClientSend"
	PublishReceive   = "publishClientReceive"
	SubscribeLiteral = "subscribeLiteral"
	SubscribePattern = "subscribePattern"
)

// ACL is one of a role's access rules.
type ACL struct {
	Type     string `json:"acltype"`
	Topic    string `json:"topic"`
	Allow    bool   `json:"allow"`
	Priority int    `json:"priority"`
}

// Role is a dynsec role: a name and its ACLs.
type Role struct {
	Name string `json:"rolename"`
	ACLs []ACL  `json:"acls"`
}

// Fixed roles' names. mosquitto 2.0's plugin substitutes neither %u nor
// %c in ACLs, so what is a user's own (a totem's subtree, a console's
// replies) is a role per user: TotemRole, ConsoleRole.
const (
	RoleHub     = "totem-hub"
	RoleConsole = "totem-console"
	RoleEnroll  = "totem-enroll"
)

// TotemRole is the name of totem id's own role.
func TotemRole(id string) string { return "totem:" + id }

// ConsoleRole is the name of console name's own role.
func ConsoleRole(name string) string { return "console:" + name }

func allow(typ string, topics ...string) []ACL {
	out := make([]ACL, len(topics))
	for i, t := range topics {
		out[i] = ACL{Type: typ, Topic: t, Allow: true}
	}
	return out
}

func join(parts ...[]ACL) []ACL {
	var out []ACL
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func leaves(id string, ls ...string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = protocol.Topic(id, l)
	}
	return out
}

// Leaves by direction, as sync/broker's allowed.
var (
	totemSends    = []string{protocol.LeafOp, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent, protocol.LeafSync, protocol.LeafRotate, protocol.LeafUpdateReq}
	totemReceives = []string{protocol.LeafResult, protocol.LeafCmd, protocol.LeafPolicy, protocol.LeafLedger, protocol.LeafRotated, protocol.LeafUpdate, protocol.LeafTechnicians}
	hubShared     = []string{protocol.LeafOp, protocol.LeafSync, protocol.LeafRotate, protocol.LeafUpdateReq}
	hubPlain      = []string{protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent}
	consoleReads  = []string{protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent}
)

// TotemACL is totem id's own role: publish its own op, state, telemetry,
// event, sync, rotate, update_req and replies to consoles; subscribe to
// exactly its own result, cmd, policy, ledger, rotated, update,
// technicians.
func TotemACL(id string) Role {
	return Role{Name: TotemRole(id), ACLs: join(
		allow(PublishSend, leaves(id, totemSends...)...),
		allow(PublishSend, protocol.Topic(id, protocol.LeafReply)+"/+"),
		allow(SubscribeLiteral, leaves(id, totemReceives...)...),
		allow(PublishReceive, leaves(id, totemReceives...)...),
	)}
}

// ConsoleACL is console name's own role, beside RoleConsole: its replies
// from totems and from the hub, and its uploads.
func ConsoleACL(name string) Role {
	replies := protocol.Topic("+", protocol.LeafReply) + "/" + name
	return Role{Name: ConsoleRole(name), ACLs: join(
		allow(SubscribeLiteral, replies, protocol.HubReplyTopic(name)),
		allow(SubscribePattern, replies),
		allow(PublishReceive, replies, protocol.HubReplyTopic(name)),
		allow(PublishSend, protocol.HubUploadTopic(name)),
	)}
}

// FixedRoles are the roles every user of a kind shares: the hubs', the
// consoles' common rules and the enroll user's.
func FixedRoles() []Role {
	var hubSub, hubRecv []string
	for _, l := range hubShared {
		t := protocol.Topic("+", l)
		hubSub = append(hubSub, "$share/totemhub/"+t, t)
		hubRecv = append(hubRecv, t)
	}
	for _, l := range hubPlain {
		t := protocol.Topic("+", l)
		hubSub = append(hubSub, t)
		hubRecv = append(hubRecv, t)
	}
	uploads := protocol.HubUploadTopic("+")
	hubSub = append(hubSub, protocol.HubCmdTopic, protocol.SharedHubCmdTopic, enroll.RequestFilter, protocol.SharedHubUploadFilter, uploads)
	hubRecv = append(hubRecv, protocol.HubCmdTopic, enroll.RequestFilter, uploads)
	hub := Role{Name: RoleHub, ACLs: join(
		allow(SubscribeLiteral, hubSub...),
		// A partitioned hub subscribes to each of its totems'
		// operations (sync/hub: partition.go): concrete filters.
		allow(SubscribePattern, protocol.Topic("+", protocol.LeafOp)),
		allow(PublishReceive, hubRecv...),
		allow(PublishSend, leaves("+", protocol.LeafResult, protocol.LeafPolicy, protocol.LeafLedger, protocol.LeafRotated,
			protocol.LeafUpdate, protocol.LeafTechnicians)...),
		allow(PublishSend, protocol.HubReplyTopic("+"), enroll.ReplyTopic("+")),
	)}
	var conSub []string
	for _, l := range consoleReads {
		conSub = append(conSub, protocol.Topic("+", l))
	}
	console := Role{Name: RoleConsole, ACLs: join(
		allow(SubscribeLiteral, conSub...),
		allow(SubscribePattern, conSub...),
		allow(PublishReceive, conSub...),
		allow(PublishSend, protocol.Topic("+", protocol.LeafCmd), protocol.HubCmdTopic),
	)}
	// The enroll user: one request on a request topic, its reply by a
	// concrete subscription (a pattern ACL refuses '+': no one reads the
	// replies of request ids it does not know).
	en := Role{Name: RoleEnroll, ACLs: join(
		// The plugin matches a pattern ACL's '+' against a '+' of the
		// subscription too: that one filter is refused by name.
		[]ACL{{Type: SubscribeLiteral, Topic: enroll.ReplyTopic("+"), Allow: false}},
		allow(PublishSend, enroll.RequestTopic("+")),
		allow(SubscribePattern, enroll.ReplyTopic("+")),
		allow(PublishReceive, enroll.ReplyTopic("+")),
	)}
	return []Role{hub, console, en}
}

// RolesOf are the roles a user of role (creds.Role*) has, its own first.
// A totem's two usernames (protocol.TotemUsernames) share the totem's role.
func RolesOf(username, role string) []string {
	switch role {
	case creds.RoleTotem:
		return []string{TotemRole(totemOf(username))}
	case creds.RoleConsole:
		return []string{ConsoleRole(username), RoleConsole}
	case creds.RoleHub:
		return []string{RoleHub}
	case roleEnroll:
		return []string{RoleEnroll}
	}
	return nil
}

// OwnRole is the role a user has for itself alone, if any.
func OwnRole(username, role string) (Role, bool) {
	switch role {
	case creds.RoleTotem:
		return TotemACL(totemOf(username)), true
	case creds.RoleConsole:
		return ConsoleACL(username), true
	}
	return Role{}, false
}

const roleEnroll = "enroll"

// totemOf is the totem whose broker username u is: u itself, or u
// without protocol.AltUsernameSuffix.
func totemOf(u string) string {
	if id, ok := protocol.UsernameTotem(u); ok {
		return id
	}
	return u
}
