package protocol

import "time"

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
type RotateRequest struct {
	V        int    `json:"v"`
	ID       string `json:"id"`
	Password string `json:"password"`
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
}

// DecodeRotateRequest decodes and validates a rotation request; its
// errors never quote the input (it holds a secret).
func DecodeRotateRequest(b []byte) (*RotateRequest, error) {
	var r RotateRequest
	if err := decode(b, &r, func() int { return r.V }); err != nil {
		return nil, err
	}
	if r.ID == "" || len(r.ID) > 64 || len(r.Password) < 32 || len(r.Password) > 128 {
		return nil, invalid("rotate request")
	}
	return &r, nil
}

// DecodeRotateReply decodes a rotation reply.
func DecodeRotateReply(b []byte) (*RotateReply, error) {
	var r RotateReply
	if err := decode(b, &r, func() int { return r.V }); err != nil {
		return nil, err
	}
	if r.ID == "" || len(r.ID) > 64 {
		return nil, invalid("rotate reply")
	}
	return &r, nil
}
