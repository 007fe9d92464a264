package hub

import (
	"log/slog"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// credentialRequest hands an enrollment or a rotation request to the
// enrollment pool and reports whether p was one.
func (en *enrollment) credentialRequest(p *paho.Publish) bool {
	h := en.h
	if en.enrollRequest(p) {
		return true
	}
	totem, leaf, ok := protocol.ParseTopic(p.Topic)
	if !ok || leaf != protocol.LeafRotate || h.o.Accounts == nil {
		return false
	}
	if !h.enr.pool.try(p, func(p *paho.Publish) { en.rotate(totem, p) }) {
		h.enr.dropped.Add(1)
	}
	return true
}

// rotate records a totem's new secret beside its current one (the broker
// ACL lets only the totem itself publish on its rotate topic) and answers
// with the new expiry. The secret never reaches a log line.
func (en *enrollment) rotate(totem string, p *paho.Publish) {
	h := en.h
	req, err := protocol.DecodeRotateRequest(p.Payload)
	if err != nil {
		h.limited(slog.LevelWarn, "rotate_malformed", "rotation request refused", "totem", totem, "err", err)
		return
	}
	reply := protocol.RotateReply{V: protocol.Version, ID: req.ID}
	ur, alternate := h.o.Accounts.(UserRotator)
	if id, _ := protocol.UsernameTotem(req.Username); alternate && req.Username != "" && id == totem {
		reply.Expires, reply.RotateAt, reply.Username, err = ur.RotateUser(totem, req.Username, req.Password, time.Now())
	} else {
		reply.Expires, reply.RotateAt, err = h.o.Accounts.Rotate(totem, req.Password, time.Now())
	}
	if err != nil {
		reply.Error = "the hub could not record the new credentials"
		h.log.Error("rotation failed", "totem", totem, "err", err)
	} else {
		reply.OK = true
		h.rotations.Add(1)
		h.log.Info("credentials rotation recorded", "totem", totem, "expires", reply.Expires)
	}
	b, _ := protocol.Marshal(reply)
	if err := h.publish(&paho.Publish{Topic: protocol.Topic(totem, protocol.LeafRotated), QoS: 1, Payload: b}); err != nil {
		h.limited(slog.LevelWarn, "rotate_reply", "rotation reply not sent", "totem", totem, "err", err)
		return
	}
	if c, ok := h.o.Accounts.(RotationCommitter); ok && reply.OK && reply.Username == "" {
		if err := c.CommitRotation(totem, time.Now()); err != nil {
			h.log.Error("rotation not given to the broker", "totem", totem, "err", err)
		}
	}
}

// RotationCommitter is Accounts that keep an external broker's users
// (sync/dynsec): the broker learns a rotated secret only once the reply is
// on its way, since mosquitto ends a client's connections when its secret
// changes and the totem would never read the reply.
type RotationCommitter interface {
	CommitRotation(username string, now time.Time) error
}

// UserRotator is Accounts that give a rotated secret to the totem's
// other broker username (sync/dynsec: mosquitto keeps one secret per user,
// so the old secret stays its user's): RotateUser records the secret for
// totem, which logs in as current now, and returns the username to
// present with it. The old username ends once the totem is seen with the
// new one (UserObserver) or the old secret expires. A request without a
// username (an older totem) goes to Rotate and RotationCommitter.
type UserRotator interface {
	RotateUser(totem, current, password string, now time.Time) (expires, rotateAt time.Time, username string, err error)
}

// UserObserver is told which broker username each online totem says it
// logged in with (protocol.State.User; its id when absent). It must not
// wait: it runs on the ingest's worker.
type UserObserver interface {
	SeenAs(totem, username string)
}

// Rotations counts the rotations the hub recorded.
func (h *Hub) Rotations() int64 { return h.rotations.Load() }
