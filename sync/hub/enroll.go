package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/time/rate"
)

// Enroller is the embedded broker's registry as enrollment uses it
// (broker.Registry): codes issued, and exchanged for credentials.
type Enroller interface {
	Enroll(totem string, validity time.Duration, now time.Time) (code string, expires time.Time, err error)
	Redeem(totem, code string, now time.Time) (creds.File, error)
	// Verifier returns the verifier of the totem's current code, for a CA
	// request (enroll.FetchCA), or the refusal: the code's own (unknown,
	// used, expired, burnt, not_a_totem) or old_code.
	Verifier(totem string, now time.Time) (enroll.Verifier, error)
	// Lookup says whether a name is a user's: only those are logged.
	Lookup(username string) (role string, ok bool)
}

// DefaultEnrollValidity is a code's validity (seed 000: 7 days).
const DefaultEnrollValidity = 7 * 24 * time.Hour

// Enrollment requests are answered from their own pool, behind a global
// rate: the broker already limits the enroll user's connections per
// source and overall, and allows one request per connection.
const (
	enrollPool  = 2
	enrollEvery = 100 * time.Millisecond
	enrollBurst = 20
)

// enrollState is the hub's side of enrollment.
type enrollState struct {
	pool    pool // enrollments and rotations
	limit   *rate.Limiter
	ok      atomic.Int64
	ca      atomic.Int64 // CA requests answered
	dropped atomic.Int64
	refused [len(enrollReasons)]atomic.Int64
	caDER   atomic.Pointer[[]byte] // SetEnrollCA
}

var enrollReasons = [...]string{enroll.ReasonMalformed, enroll.ReasonTooLarge, enroll.ReasonAlphabet, enroll.ReasonLength,
	enroll.ReasonUnknown, enroll.ReasonExpired, enroll.ReasonUsed, enroll.ReasonBurnt, enroll.ReasonNotTotem,
	enroll.ReasonOldCode, enroll.ReasonNoCA, enroll.ReasonInternal}

// enrollment is the credentials' side of the hub: it redeems enrollment
// codes (enroll.go) and rotates the totems' broker passwords (rotate.go),
// from the state in Hub.enr.
type enrollment struct{ h *Hub }

// SetEnrollCA gives the hub the CA certificate (DER) that issued its
// broker's certificate, which it hands to a totem that proves it holds a
// valid code for it (enroll.FetchCA, a CA request). Without it (the
// broker has the ASL's own certificate) a CA request is refused, no_ca.
// Called before Run.
func (h *Hub) SetEnrollCA(der []byte) {
	der = append([]byte(nil), der...)
	h.enr.caDER.Store(&der)
}

// EnrollStats are the enrollment figures: exchanges made, CA requests
// answered, requests dropped (over the rate or the pool) and refusals by
// reason.
type EnrollStats struct {
	OK      int64            `json:"ok"`
	CA      int64            `json:"ca,omitempty"`
	Dropped int64            `json:"dropped,omitempty"`
	Refused map[string]int64 `json:"refused,omitempty"`
}

// EnrollStats returns the enrollment counters.
func (h *Hub) EnrollStats() EnrollStats {
	s := EnrollStats{OK: h.enr.ok.Load(), CA: h.enr.ca.Load(), Dropped: h.enr.dropped.Load(), Refused: map[string]int64{}}
	for i, r := range enrollReasons {
		if n := h.enr.refused[i].Load(); n > 0 {
			s.Refused[r] = n
		}
	}
	return s
}

func (en *enrollment) countRefusal(reason string) {
	h := en.h
	for i, r := range enrollReasons {
		if r == reason {
			h.enr.refused[i].Add(1)
			return
		}
	}
	h.enr.refused[len(enrollReasons)-1].Add(1) // internal
}

// enrollRequest hands an enrollment request to its pool and reports
// whether p was one.
func (en *enrollment) enrollRequest(p *paho.Publish) bool {
	h := en.h
	rid, ok := enroll.RequestIDOfTopic(p.Topic)
	if !ok || h.o.Enroller == nil {
		return false
	}
	if h.enr.limit == nil || !h.enr.limit.Allow() || !h.enr.pool.try(p, func(p *paho.Publish) { en.redeem(rid, p) }) {
		h.enr.dropped.Add(1)
	}
	return true
}

// redeem answers one request. Every attempt is an audit line: the request
// (requestRef), the totem (only when the name is a user's), the outcome and the reason
// of a refusal; never the code. A refusal is also a record of the central
// audit (Options.Audit), and so is a CA request answered.
func (en *enrollment) redeem(rid string, p *paho.Publish) {
	h := en.h
	ref := requestRef(rid) // as logged
	reply := enroll.Reply{V: protocol.Version}
	req, err := enroll.DecodeRequest(p.Payload)
	totem := "" // as logged
	step := ""  // as audited: "step=ca " for a CA request
	if err == nil {
		// The name is whatever the enroll user sent (it could be a
		// codice fiscale): logged only when it is a user's.
		totem = fmt.Sprintf("<%d bytes>", len(req.Totem))
		if _, ok := h.o.Enroller.Lookup(req.Totem); ok {
			totem = req.Totem
		}
		if req.CARequest() {
			step = "step=ca "
			err = en.answerCA(req, &reply)
		} else {
			var f creds.File
			if f, err = h.o.Enroller.Redeem(req.Totem, req.Code, time.Now()); err == nil {
				reply.OK, reply.Credentials, reply.Expires = true, &f, f.Expires
			}
		}
	}
	if err != nil {
		reply.Reason = enroll.ReasonOf(err)
		if reply.Reason == "" {
			reply.Reason = enroll.ReasonInternal
		}
		reply.Error = err.Error()
		if reply.Reason == enroll.ReasonInternal {
			h.log.Error("enrollment failed", "request", ref, "totem", totem, "err", err)
			reply.Error = "the hub could not store the credentials"
			if step != "" {
				reply.Error = "the hub could not read the code's record"
			}
		}
		en.countRefusal(reply.Reason)
		h.log.Warn("enrollment refused", "request", ref, "totem", totem, "ca_request", step != "", "reason", reply.Reason, "bytes", len(p.Payload))
		// In the central audit too, as the exchanges made are (the
		// broker's credential_enrolled): the broker's limits on the enroll
		// user bound how many there can be.
		h.Audit("enroll", "enroll_refused", fmt.Sprintf("request=%s totem=%s %sreason=%s", ref, totem, step, reply.Reason))
	} else if step != "" {
		// The answer lets its receiver try codes offline (at argon2id's
		// cost): audited as the attempts are.
		h.enr.ca.Add(1)
		h.log.Info("enrollment CA sent", "request", ref, "totem", totem)
		h.Audit("enroll", "enroll_ca", fmt.Sprintf("request=%s totem=%s", ref, totem))
	} else {
		h.enr.ok.Add(1)
		h.log.Info("totem enrolled", "request", ref, "totem", totem)
	}
	b, _ := json.Marshal(reply)
	if err := h.publish(&paho.Publish{Topic: enroll.ReplyTopic(rid), QoS: 1, Payload: b}); err != nil {
		h.limited(slog.LevelWarn, "enroll_reply", "enrollment reply not sent", "request", ref, "err", err)
	}
}

// answerCA fills the answer to a CA request: the CA certificate, the
// salt and parameters of the code's verifier, and the MAC that binds the
// totem's nonce, the CA and the totem (enroll/ca.go). The code is not in
// the request and the hub does not know it: the verifier's key is enough.
func (en *enrollment) answerCA(req enroll.Request, reply *enroll.Reply) error {
	h := en.h
	ca := h.enr.caDER.Load()
	if ca == nil || len(*ca) == 0 {
		return &enroll.Error{Reason: enroll.ReasonNoCA, Msg: "this hub's broker certificate is not from the hub's own CA: the totem's ca_file must be set by hand"}
	}
	v, err := h.o.Enroller.Verifier(req.Totem, time.Now())
	if err != nil {
		return err
	}
	reply.OK, reply.CA, reply.Salt, reply.KDF = true, *ca, v.Salt, &v.KDF
	reply.MAC = enroll.CAMAC(v.Key, req.Nonce, *ca, req.Totem)
	return nil
}

// requestRef is how a request is named in the log and the audit: a digest
// of its id, which the client chose (16 to 32 letters or digits, room
// enough for a codice fiscale), so the lines of one request go together
// and never quote it.
func requestRef(rid string) string {
	d := sha256.Sum256([]byte(rid))
	return hex.EncodeToString(d[:6])
}

// EnrollCode is the Data of the hub's enroll command.
type EnrollCode struct {
	Totem   string    `json:"totem"`
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// enrollCommand issues a code for args["totem"] (registering the totem if
// needed); the code goes back to the console only, never to a log.
func (cs *commands) enrollCommand(cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	if h.o.Enroller == nil {
		return nil, errors.New("this hub keeps no broker users (external broker): no enrollment")
	}
	totem := cmd.Args["totem"]
	if !protocol.ValidTotemID(totem) {
		return nil, errors.New("totem: invalid id")
	}
	validity := h.o.EnrollValidity
	if validity <= 0 {
		validity = DefaultEnrollValidity
	}
	code, exp, err := h.o.Enroller.Enroll(totem, validity, time.Now())
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", totem, err)
	}
	h.log.Warn("enrollment code issued", "totem", totem, "console", console, "key", cmd.Key, "expires", exp)
	return json.Marshal(EnrollCode{Totem: totem, Code: code, Expires: exp})
}
