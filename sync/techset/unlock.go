package techset

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// One-time unlock codes: what a technician types at a totem whose clock is
// not synchronised, when a TOTP (which needs the time) cannot be trusted.
//
// A code is 11 digits, typed on the 12-key keypad: the 5 low decimal digits
// of the hub's clock in minutes when it was issued, then 6 digits of an
// HMAC-SHA256, with the totem's unlock key, over the totem's id, the
// technician's number and the whole issue minute (dynamic truncation as in
// RFC 4226). The key is derived by the hub from its master secret for that
// totem only and reaches the totem inside its signed technician set, so a
// code made for one totem fails at every other.
//
// The totem rebuilds the whole minute from its 5 digits against the latest
// hub time it can vouch for (the issue time of its technician set, of the
// last code accepted, or its own clock while synchronised, each advanced by
// the monotonic time since): the congruent minute no older than the
// code's life. A code is accepted when its MAC matches that minute, it is
// not older than UnlockTTL against that reference, and the minute is later
// than the last code the same technician used (so each code works once).
// Six MAC digits against 5 attempts per 15-minute lock make guessing
// hopeless (one in 10^6 per try, 480 tries a day).
const (
	UnlockDigits = 11
	UnlockTTL    = 15 * time.Minute
	minuteDigits = 5
	minuteMod    = 100000
	macMod       = 1000000
)

// Errors of CheckUnlock.
var (
	ErrBadCode = errors.New("techset: unlock code not valid")
	ErrExpired = errors.New("techset: unlock code expired")
	ErrUsed    = errors.New("techset: unlock code already used")
)

// DeriveUnlockKey derives totem's unlock key from the hub's master secret.
func DeriveUnlockKey(master []byte, totem string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("totem-unlock-key/1\x00"))
	m.Write([]byte(totem))
	return m.Sum(nil)
}

func unlockMAC(key []byte, totem, tech string, minute int64) int64 {
	m := hmac.New(sha256.New, key)
	var b []byte
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str("totem-unlock/1")
	str(totem)
	str(tech)
	b = binary.BigEndian.AppendUint64(b, uint64(minute))
	m.Write(b)
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := int64(binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff)
	return v % macMod
}

// UnlockCode returns the code for technician tech at totem, issued at the
// hub's time issued.
func UnlockCode(key []byte, totem, tech string, issued time.Time) string {
	minute := issued.Unix() / 60
	return fmt.Sprintf("%05d%06d", minute%minuteMod, unlockMAC(key, totem, tech, minute))
}

// CheckUnlock checks code for technician tech at totem against ref, the
// latest hub time the totem vouches for, and the issue minute of the last
// code tech used (0: none). It returns the code's issue time, which the
// caller records as used (and as a hub time it can vouch for).
func CheckUnlock(key []byte, totem, tech, code string, ref time.Time, lastMinute int64) (time.Time, error) {
	if len(code) != UnlockDigits || len(key) != keyLen {
		return time.Time{}, ErrBadCode
	}
	var low, mac int64
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c < '0' || c > '9' {
			return time.Time{}, ErrBadCode
		}
		if i < minuteDigits {
			low = low*10 + int64(c-'0')
		} else {
			mac = mac*10 + int64(c-'0')
		}
	}
	// The congruent minute in [ref - TTL, ref - TTL + 10^5 minutes).
	lo := ref.Unix()/60 - int64(UnlockTTL/time.Minute)
	minute := lo + ((low-lo)%minuteMod+minuteMod)%minuteMod
	ok := hmac.Equal(macBytes(unlockMAC(key, totem, tech, minute)), macBytes(mac))
	if !ok {
		if hmac.Equal(macBytes(unlockMAC(key, totem, tech, minute-minuteMod)), macBytes(mac)) {
			return time.Time{}, ErrExpired
		}
		return time.Time{}, ErrBadCode
	}
	issued := time.Unix(minute*60, 0).UTC()
	if ref.Sub(issued) > UnlockTTL {
		return time.Time{}, ErrExpired
	}
	if minute <= lastMinute {
		return time.Time{}, ErrUsed
	}
	return issued, nil
}

func macBytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// Minute is the issue minute CheckUnlock records for a code issued at t.
func Minute(t time.Time) int64 { return t.Unix() / 60 }
