// Package techset is the set of field technicians a totem admits to
// maintenance mode at its panel: their numeric ids and TOTP secrets
// (RFC 6238), enrolled centrally and pushed by the hub to each totem,
// signed with the hub's key (an Ed25519 cmdsig key of role ops the totems
// trust like a console's), and the one-time unlock codes the hub issues
// for a totem whose clock is not synchronised (unlock.go). The hub's store
// of the set is store.go.
//
// A pushed set names its totem and carries that totem's unlock key, so a
// set is valid at one totem only; its version only grows, so an old set
// replayed (a retained message from before a removal) is refused.
package techset

import (
	"crypto/ed25519"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aslcns/totem/internal/strictjson"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
)

// Technician is one technician as a totem knows them: no name, only the
// number typed at the panel and the TOTP secret.
type Technician struct {
	ID     string `json:"id"`     // 4 to 8 digits, typed at the panel
	Secret string `json:"secret"` // base32 (RFC 4648, no padding), at least 16 bytes
}

// Set is the signed technician set the hub pushes to one totem.
type Set struct {
	V           int          `json:"v"`
	Totem       string       `json:"totem"`
	Version     uint64       `json:"version"` // grows with every change at the hub
	Issued      time.Time    `json:"issued"`  // the hub's clock
	Technicians []Technician `json:"technicians"`
	// UnlockKey is the totem's key for the one-time unlock codes
	// (unlock.go), derived by the hub for this totem only.
	UnlockKey []byte `json:"unlock_key"`
	Key       string `json:"key"` // the signing key's id
	Sig       []byte `json:"sig"`
}

// Limits of a set.
const (
	Version    = 1
	MaxBytes   = 64 << 10
	MaxMembers = 200 // a set stays under the broker's 16 KiB retained limit
	keyLen     = 32
)

// Errors of Decode and Verify.
var (
	ErrInvalid   = errors.New("techset: invalid set")
	ErrSignature = errors.New("techset: signature does not verify")
	ErrTarget    = errors.New("techset: set for another totem")
)

// ValidID reports whether id can be a technician's number: 4 to 8 digits.
func ValidID(id string) bool {
	if len(id) < 4 || len(id) > 8 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ValidSecret reports whether s is a base32 TOTP secret of 16 to 64 bytes.
func ValidSecret(s string) bool {
	b, err := b32.DecodeString(s)
	return err == nil && len(b) >= 16 && len(b) <= 64
}

// domain separates these signatures from commands signed by the same key.
const domain = "totem-techset-sig/1"

// Canonical returns the bytes the signature covers: each field length
// prefixed, the technicians in id order, times as Unix nanoseconds.
func Canonical(s *Set) []byte {
	b := make([]byte, 0, 128+64*len(s.Technicians))
	str := func(v []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	str([]byte(domain))
	b = binary.BigEndian.AppendUint32(b, uint32(s.V))
	str([]byte(s.Totem))
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Issued.UnixNano()))
	str(s.UnlockKey)
	str([]byte(s.Key))
	ts := slices.Clone(s.Technicians)
	slices.SortFunc(ts, func(a, b Technician) int { return cmpString(a.ID, b.ID) })
	b = binary.BigEndian.AppendUint32(b, uint32(len(ts)))
	for _, t := range ts {
		str([]byte(t.ID))
		str([]byte(t.Secret))
	}
	return b
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Sign fills s's key and signature with k, which must have role ops.
func Sign(k cmdsig.PrivateKey, s *Set) error {
	if k.Role != cmdsig.Ops {
		return fmt.Errorf("techset: key %s has role %s: a technician set needs ops", k.ID, k.Role)
	}
	s.Key = k.ID
	s.Issued = s.Issued.Round(0).UTC()
	s.Sig = ed25519.Sign(k.Key, Canonical(s))
	return nil
}

// Decode parses a set strictly and checks its fields; it does not verify
// the signature (Verify does).
func Decode(b []byte) (*Set, error) {
	return strictjson.DecodeChecked(b, MaxBytes, ErrInvalid, (*Set).check)
}

func (s *Set) check() error {
	switch {
	case s.V != Version:
		return fmt.Errorf("%w: version %d", ErrInvalid, s.V)
	case !protocol.ValidTotemID(s.Totem):
		return fmt.Errorf("%w: totem id", ErrInvalid)
	case s.Version == 0 || s.Issued.IsZero():
		return fmt.Errorf("%w: no version or issue time", ErrInvalid)
	case len(s.UnlockKey) != keyLen:
		return fmt.Errorf("%w: unlock key of %d bytes", ErrInvalid, len(s.UnlockKey))
	case !protocol.ValidTotemID(s.Key) || len(s.Sig) != ed25519.SignatureSize:
		return fmt.Errorf("%w: unsigned", ErrInvalid)
	case len(s.Technicians) > MaxMembers:
		return fmt.Errorf("%w: %d technicians", ErrInvalid, len(s.Technicians))
	}
	seen := make(map[string]bool, len(s.Technicians))
	for i, t := range s.Technicians {
		if !ValidID(t.ID) || !ValidSecret(t.Secret) || seen[t.ID] {
			return fmt.Errorf("%w: technician %d", ErrInvalid, i)
		}
		seen[t.ID] = true
	}
	return nil
}

// Verify decodes b and checks that a trusted key of role ops signed it
// for totem. Nothing of a set that fails is to be used.
func Verify(b []byte, totem string, keys []cmdsig.PublicKey) (*Set, error) {
	s, err := Decode(b)
	if err != nil {
		return nil, err
	}
	var key *cmdsig.PublicKey
	for i := range keys {
		if keys[i].ID == s.Key {
			key = &keys[i]
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: key %s is not trusted here", ErrSignature, s.Key)
	}
	if key.Role != cmdsig.Ops {
		return nil, fmt.Errorf("%w: key %s is not an ops key", ErrSignature, s.Key)
	}
	if !ed25519.Verify(key.Key, Canonical(s), s.Sig) {
		return nil, fmt.Errorf("%w: key %s", ErrSignature, s.Key)
	}
	if s.Totem != totem {
		return nil, fmt.Errorf("%w: %q", ErrTarget, s.Totem)
	}
	return s, nil
}

// Find returns the technician with id.
func (s *Set) Find(id string) (Technician, bool) {
	for _, t := range s.Technicians {
		if t.ID == id {
			return t, true
		}
	}
	return Technician{}, false
}
