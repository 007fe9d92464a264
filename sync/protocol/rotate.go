package protocol

import (
	"strings"
	"time"
)

// A totem replaces its own broker secret ahead of its expiry (sync/uplink
// rotate.go, docs/protocol.md "Rotation"): it sends the new secret on
// LeafRotate over its own authenticated connection, the hub records it
// beside the old one and answers on LeafRotated; the next login with the
// new secret makes it the only one.
const (
	LeafRotate  = "rotate"  // totem → hub: a RotateRequest
	LeafRotated = "rotated" // hub → totem: the RotateReply
)

// SharedRotateFilter is the subscription hub instances share for rotations.
const SharedRotateFilter = "$share/totemhub/" + Root + "/+/" + LeafRotate

// RotateRequest carries the totem's new secret (over TLS only).
// Username is the broker username the totem logs in with now (one of
// TotemUsernames(totem)); a totem that sends it can present another one
// with the new secret (RotateReply.Username). Older totems leave it out.
type RotateRequest struct {
	V        int    `json:"v"`
	ID       string `json:"id"`
	Password string `json:"password"`
	Username string `json:"username,omitempty"`
}

// RotateReply says whether the hub recorded the new secret, its expiry
// and when to rotate again.
type RotateReply struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	RotateAt time.Time `json:"rotate_at,omitzero"`
	// Username is the broker username to present with the new secret;
	// empty: the same as before. A hub on mosquitto's dynamic security
	// gives the new secret to the totem's other username
	// (TotemUsernames), so the old one keeps working until the totem is
	// seen logged in with the new one.
	Username string `json:"username,omitempty"`
}

// AltUsernameSuffix makes a totem's second broker username: on
// mosquitto's dynamic security, which keeps one secret per user, a
// rotation alternates between the two. A totem id never holds a dot.
const AltUsernameSuffix = ".b"

// TotemUsernames are the broker usernames totem may log in with: its id,
// and its id with AltUsernameSuffix.
func TotemUsernames(totem string) [2]string {
	return [2]string{totem, totem + AltUsernameSuffix}
}

// UsernameTotem returns the totem whose broker username u is (one of
// TotemUsernames), if it is one.
func UsernameTotem(u string) (string, bool) {
	id := strings.TrimSuffix(u, AltUsernameSuffix)
	return id, ValidTotemID(id)
}

// OtherUsername is the other of the two usernames of the totem whose
// username u is.
func OtherUsername(u string) string {
	if id, ok := strings.CutSuffix(u, AltUsernameSuffix); ok {
		return id
	}
	return u + AltUsernameSuffix
}

// DecodeRotateRequest decodes and validates a rotation request; its
// errors never quote the input (it holds a secret).
func DecodeRotateRequest(b []byte) (*RotateRequest, error) { return decodeValid[RotateRequest](b) }

func (r *RotateRequest) version() int { return r.V }

func (r *RotateRequest) check() error {
	if r.ID == "" || len(r.ID) > 64 || len(r.Password) < 32 || len(r.Password) > 128 {
		return invalid("rotate request")
	}
	if _, ok := UsernameTotem(r.Username); r.Username != "" && !ok {
		return invalid("rotate request username")
	}
	return nil
}

// DecodeRotateReply decodes a rotation reply.
func DecodeRotateReply(b []byte) (*RotateReply, error) { return decodeValid[RotateReply](b) }

func (r *RotateReply) version() int { return r.V }

func (r *RotateReply) check() error {
	if r.ID == "" || len(r.ID) > 64 {
		return invalid("rotate reply")
	}
	if _, ok := UsernameTotem(r.Username); r.Username != "" && !ok {
		return invalid("rotate reply username")
	}
	return nil
}
