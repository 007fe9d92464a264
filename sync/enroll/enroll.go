// Package enroll is how a totem gets its own credentials from a
// 12-character code (seed 000: a security code valid 7 days, given by a
// second channel): the code's format, the request and reply of the
// exchange, their topics, and the totem's side of it (Exchange), with
// the step before it for a totem that does not know the hub's CA yet
// (FetchCA, ca.go).
//
// The exchange runs over the broker, over TLS, under a dedicated user,
// Username, that the broker lets do nothing else: publish one request on
// RequestTopic(rid) and receive the reply on ReplyTopic(rid), where rid is
// the random part of its client id ClientID(rid). Its password is public
// (Password): what protects the exchange is the code, single use, stored
// hashed, expiring, burnt after MaxAttempts wrong tries, and the broker's
// limits on the enroll user's connections per source and overall.
package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aslcns/totem/internal/asciiset"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
)

// Alphabet has no 0, 1, I or O, which read alike on paper and on a panel.
const Alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// CodeLen is a code's length without the dashes: 60 bits.
const CodeLen = 12

// MaxAttempts wrong codes for a totem burn its code, as eight wrong
// passwords lock a user.
const MaxAttempts = 8

// MaxRequest bounds a request's payload; a real one is under 200 bytes.
const MaxRequest = 1024

// The enroll user (see the package comment).
const (
	Username = "enroll"
	Password = "enroll"
)

// Reasons a request is refused, in Reply.Reason; each is counted.
const (
	ReasonMalformed = "malformed"   // not a request: bad JSON, unknown field, bad totem id
	ReasonTooLarge  = "too_large"   // over MaxRequest
	ReasonAlphabet  = "alphabet"    // a character not in Alphabet
	ReasonLength    = "length"      // not CodeLen characters
	ReasonUnknown   = "unknown"     // no such code for this totem
	ReasonExpired   = "expired"     // the code's validity is over
	ReasonUsed      = "used"        // the code was already exchanged
	ReasonBurnt     = "burnt"       // MaxAttempts wrong codes: ops must issue a new one
	ReasonNotTotem  = "not_a_totem" // the name is a console's or a hub's
	ReasonOldCode   = "old_code"    // a CA request for a code issued before the hub kept verifiers
	ReasonNoCA      = "no_ca"       // a CA request to a hub whose broker certificate is not from its own CA
	ReasonInternal  = "internal"    // the hub could not store the credentials
)

// Reasons lists every refusal reason, for counters.
var Reasons = []string{ReasonMalformed, ReasonTooLarge, ReasonAlphabet, ReasonLength, ReasonUnknown, ReasonExpired,
	ReasonUsed, ReasonBurnt, ReasonNotTotem, ReasonOldCode, ReasonNoCA, ReasonInternal}

// ReasonMismatch is the totem's own refusal of a CA answer whose MAC does
// not check (FetchCA): never a hub's reason.
const ReasonMismatch = "mismatch"

// Error is a refusal with its reason.
type Error struct{ Reason, Msg string }

func (e *Error) Error() string { return e.Msg + " (" + e.Reason + ")" }

func refuse(reason, format string, args ...any) error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of a refusal, "" for another error.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// NewCode returns a random code, grouped for reading: K7QM-2XPA-9RTD.
func NewCode() (string, error) {
	b := make([]byte, CodeLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	for i := range b {
		b[i] = Alphabet[int(b[i])%len(Alphabet)] // 256 is a multiple of 32: no bias
	}
	return Group(string(b)), nil
}

// Group writes a normalised code in groups of four.
func Group(code string) string {
	if len(code) != CodeLen {
		return code
	}
	return code[0:4] + "-" + code[4:8] + "-" + code[8:12]
}

// ParseCode normalises what a technician typed: case, dashes and spaces
// do not matter; any other character outside Alphabet is refused, and
// the error never quotes the input.
func ParseCode(s string) (string, error) {
	if len(s) > 64 {
		return "", refuse(ReasonLength, "the code has %d characters, want %d", len(s), CodeLen)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if strings.IndexByte(Alphabet, c) < 0 {
			return "", refuse(ReasonAlphabet, "character %d of the code is not one of %s", i+1, Alphabet)
		}
		b.WriteByte(c)
	}
	if b.Len() != CodeLen {
		return "", refuse(ReasonLength, "the code has %d characters, want %d", b.Len(), CodeLen)
	}
	return b.String(), nil
}

// Hash is what the hub stores of a normalised code: bound to the totem, so
// a code is worth nothing for another.
func Hash(totem, code string) string {
	h := sha256.Sum256([]byte("totem-enroll/1\x00" + totem + "\x00" + code))
	return hex.EncodeToString(h[:])
}

// Topics of the exchange, under the hub's root.
func RequestTopic(rid string) string { return protocol.HubRoot + "/enroll/" + rid }
func ReplyTopic(rid string) string   { return RequestTopic(rid) + "/reply" }

// RequestFilter is the hub's subscription.
const RequestFilter = protocol.HubRoot + "/enroll/+"

const clientPrefix = "enroll-"

// ClientID is the enroll user's client id for a request id.
func ClientID(rid string) string { return clientPrefix + rid }

// RequestID returns the request id of an enroll client id, if it is one:
// 16 to 32 letters or digits.
func RequestID(clientID string) (string, bool) {
	rid, ok := strings.CutPrefix(clientID, clientPrefix)
	if !ok || !alnum.Valid(rid, 16, 32) {
		return "", false
	}
	return rid, true
}

var alnum = asciiset.Of("A-Za-z0-9")

// RequestIDOfTopic returns the request id of a request topic.
func RequestIDOfTopic(topic string) (string, bool) {
	rid, ok := strings.CutPrefix(topic, protocol.HubRoot+"/enroll/")
	if !ok {
		return "", false
	}
	_, ok = RequestID(clientPrefix + rid)
	return rid, ok
}

// Request is what the totem sends: its code, or (a CA request, FetchCA)
// a fresh nonce and no code.
type Request struct {
	V     int    `json:"v"`
	Totem string `json:"totem"`
	Code  string `json:"code,omitempty"`
	Nonce []byte `json:"nonce,omitempty"` // NonceLen random bytes
}

// Reply is the hub's answer: the totem's credentials and when they
// expire, or the reason of the refusal. To a CA request it is the hub's
// CA certificate, the salt and parameters of the code's verifier and the
// MAC that proves the hub knows the code (ca.go).
type Reply struct {
	V           int         `json:"v"`
	OK          bool        `json:"ok"`
	Reason      string      `json:"reason,omitempty"`
	Error       string      `json:"error,omitempty"`
	Credentials *creds.File `json:"credentials,omitempty"`
	Expires     time.Time   `json:"expires,omitzero"`
	CA          []byte      `json:"ca,omitempty"` // DER
	Salt        []byte      `json:"salt,omitempty"`
	KDF         *KDF        `json:"kdf,omitempty"`
	MAC         []byte      `json:"mac,omitempty"`
}

// CARequest reports whether r asks for the hub's CA (FetchCA) rather than
// credentials.
func (r Request) CARequest() bool { return r.Nonce != nil }

// DecodeRequest checks a request's size and form; the code is only
// normalised, its validity is the hub's to judge. A CA request carries a
// nonce of NonceLen bytes and no code.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) > MaxRequest {
		return Request{}, refuse(ReasonTooLarge, "request of %d bytes, over %d", len(b), MaxRequest)
	}
	var r Request
	if err := protocol.DecodeEnvelope(b, &r, func() int { return r.V }); err != nil || !protocol.ValidTotemID(r.Totem) {
		return Request{}, refuse(ReasonMalformed, "not an enrollment request")
	}
	if r.Nonce != nil {
		if len(r.Nonce) != NonceLen || r.Code != "" {
			return Request{}, refuse(ReasonMalformed, "not a CA request")
		}
		return r, nil
	}
	code, err := ParseCode(r.Code)
	if err != nil {
		return Request{}, err
	}
	r.Code = code
	return r, nil
}
