// Package maint is the door of the totem's maintenance mode at the panel:
// the technician set the hub pushed (verified, kept), the check of a
// technician's number and TOTP code (RFC 6238: 6 digits, 30 s, one step of
// skew, each code once), the one-time unlock code when the clock is not
// synchronised, and the lock of the panel entry after repeated failures.
// Its state survives restarts, so a restart neither admits a used code
// again nor lifts a lock. Time comes from an injected hal.Clock.
//
// The menu behind the door is the firmware's (firmware/maintenance.go).
package maint

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/techset"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// TOTP parameters (what Google Authenticator produces).
const (
	Period = 30 * time.Second
	Skew   = 1
	Digits = 6
)

// Lockout: MaxFailures failed entries in a row lock the panel entry for
// LockFor.
const (
	MaxFailures = 5
	LockFor     = 15 * time.Minute
)

// Errors of Login.
var (
	ErrNoSet    = errors.New("maint: no technician set received")
	ErrRefused  = errors.New("maint: technician number or code not valid")
	ErrReused   = errors.New("maint: code already used")
	ErrExpired  = errors.New("maint: unlock code expired")
	ErrLocked   = errors.New("maint: panel entry locked")
	ErrLockedUp = errors.New("maint: too many failures, panel entry locked") // this failure locked it
)

// Store keeps the gate's state across restarts (the outbox's meta).
type Store interface {
	Meta(key string) ([]byte, error)
	SetMeta(key string, val []byte) error
}

// Options configures a Gate.
type Options struct {
	Totem string
	// Keys are the trusted console keys: a set must be signed by one of
	// role ops (the hub's).
	Keys  []cmdsig.PublicKey
	Store Store
	Clock hal.Clock // default hal.SystemClock
	// Synced reports whether the wall clock is synchronised; nil: never.
	Synced func() bool
}

// Meta keys.
const (
	metaSet   = "techset"
	metaState = "maint"
)

// state is what survives restarts.
type state struct {
	Steps   map[string]uint64 `json:"steps"`   // last TOTP time-step used, by technician
	Unlocks map[string]int64  `json:"unlocks"` // last unlock code minute used, by technician
	Floor   int64             `json:"floor"`   // latest hub time vouched for, Unix s
	Fails   int               `json:"fails"`
	Locked  bool              `json:"locked"`
}

// Gate admits technicians. It is safe for concurrent use.
type Gate struct {
	o Options

	mu      sync.Mutex
	set     *techset.Set
	st      state
	floorAt time.Time // the clock when Floor was learnt
	until   time.Time // end of the lock, while st.Locked
}

// New loads the gate's state and the set last received.
func New(o Options) (*Gate, error) {
	if o.Clock == nil {
		o.Clock = hal.SystemClock{}
	}
	if o.Synced == nil {
		o.Synced = func() bool { return false }
	}
	g := &Gate{o: o, st: state{Steps: map[string]uint64{}, Unlocks: map[string]int64{}}}
	now := o.Clock.Now()
	g.floorAt = now
	if b, err := o.Store.Meta(metaState); err != nil {
		return nil, fmt.Errorf("maint: %w", err)
	} else if b != nil {
		if err := json.Unmarshal(b, &g.st); err != nil {
			return nil, fmt.Errorf("maint: state: %w", err)
		}
		if g.st.Steps == nil {
			g.st.Steps = map[string]uint64{}
		}
		if g.st.Unlocks == nil {
			g.st.Unlocks = map[string]int64{}
		}
	}
	if g.st.Locked {
		// How long it has been locked is unknown across a restart: the
		// whole lock again, never less.
		g.until = now.Add(LockFor)
	}
	if b, err := o.Store.Meta(metaSet); err != nil {
		return nil, fmt.Errorf("maint: %w", err)
	} else if b != nil {
		s, err := techset.Verify(b, o.Totem, o.Keys)
		if err != nil {
			// Kept by an older key set, say: not trusted any more.
			return g, nil
		}
		g.set = s
	}
	return g, nil
}

// Trust replaces the trusted console keys (totemd reads them once the
// credentials are there) and adopts the set kept, if they verify it.
func (g *Gate) Trust(keys []cmdsig.PublicKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.o.Keys = keys
	if g.set != nil {
		return
	}
	if b, err := g.o.Store.Meta(metaSet); err == nil && b != nil {
		if s, err := techset.Verify(b, g.o.Totem, keys); err == nil {
			g.set = s
		}
	}
}

// SetTechnicians adopts a set the hub pushed, if it is signed for this
// totem by a trusted ops key and newer than the one held; it reports
// whether it was adopted (an equal version is the retained copy again).
func (g *Gate) SetTechnicians(b []byte) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, err := techset.Verify(b, g.o.Totem, g.o.Keys)
	if err != nil {
		return false, err
	}
	if g.set != nil && s.Version <= g.set.Version {
		if s.Version < g.set.Version {
			return false, fmt.Errorf("maint: technician set version %d older than %d held", s.Version, g.set.Version)
		}
		return false, nil
	}
	if err := g.o.Store.SetMeta(metaSet, b); err != nil {
		return false, fmt.Errorf("maint: %w", err)
	}
	g.set = s
	g.learn(s.Issued)
	if g.o.Synced() {
		g.learn(g.o.Clock.Now())
	}
	return true, g.save()
}

// Technicians is how many technicians the held set has (-1: none held).
func (g *Gate) Technicians() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set == nil {
		return -1
	}
	return len(g.set.Technicians)
}

// TriesLeft is how many failures in a row are left before the lock.
func (g *Gate) TriesLeft() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(0, MaxFailures-g.st.Fails)
}

// Synced reports whether the clock is synchronised: then a TOTP is asked,
// otherwise an unlock code.
func (g *Gate) Synced() bool { return g.o.Synced() }

// Locked reports whether the panel entry is locked, and for how long.
func (g *Gate) Locked() (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.locked(g.o.Clock.Now())
}

func (g *Gate) locked(now time.Time) (bool, time.Duration) {
	if !g.st.Locked {
		return false, 0
	}
	if left := g.until.Sub(now); left > 0 {
		return true, left
	}
	g.st.Locked, g.st.Fails = false, 0
	g.save()
	return false, 0
}

// Login checks technician id's code: a TOTP while the clock is
// synchronised, an unlock code otherwise. A failure is counted; the
// MaxFailures-th locks the entry (ErrLockedUp).
func (g *Gate) Login(id, code string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.o.Clock.Now()
	if l, _ := g.locked(now); l {
		return ErrLocked
	}
	if g.set == nil {
		return ErrNoSet
	}
	var err error
	if g.o.Synced() {
		err = g.totp(id, code, now)
	} else {
		err = g.unlock(id, code, now)
	}
	if err == nil {
		g.st.Fails = 0
		return g.save()
	}
	g.st.Fails++
	if g.st.Fails >= MaxFailures {
		g.st.Locked, g.until = true, now.Add(LockFor)
		err = fmt.Errorf("%w (%w)", ErrLockedUp, err)
	}
	if serr := g.save(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func (g *Gate) totp(id, code string, now time.Time) error {
	t, ok := g.set.Find(id)
	if !ok || len(code) != Digits {
		return ErrRefused
	}
	step := now.Unix() / int64(Period/time.Second)
	for i := -Skew; i <= Skew; i++ {
		c := uint64(step + int64(i))
		want, err := hotp.GenerateCodeCustom(t.Secret, c, hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return ErrRefused
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if c <= g.st.Steps[id] {
				return ErrReused
			}
			g.st.Steps[id] = c
			g.learn(now) // NTP vouches for it
			return nil
		}
	}
	return ErrRefused
}

func (g *Gate) unlock(id, code string, now time.Time) error {
	if _, ok := g.set.Find(id); !ok {
		return ErrRefused
	}
	issued, err := techset.CheckUnlock(g.set.UnlockKey, g.o.Totem, id, code, g.ref(now), g.st.Unlocks[id])
	switch {
	case errors.Is(err, techset.ErrUsed):
		return ErrReused
	case errors.Is(err, techset.ErrExpired):
		return ErrExpired
	case err != nil:
		return ErrRefused
	}
	g.st.Unlocks[id] = techset.Minute(issued)
	g.learn(issued)
	return nil
}

// ref is the latest hub time the totem vouches for: the floor advanced by
// the (monotonic) time since it was learnt, or the clock while it is
// synchronised, whichever is later.
func (g *Gate) ref(now time.Time) time.Time {
	r := g.floorRef(now)
	if g.o.Synced() && now.After(r) {
		r = now
	}
	return r
}

func (g *Gate) floorRef(now time.Time) time.Time {
	return time.Unix(g.st.Floor, 0).Add(now.Sub(g.floorAt))
}

// learn moves the floor to t, a time the hub (or NTP) vouched for, if
// later: kept across restarts, it is the reference once the clock is not
// synchronised any more.
func (g *Gate) learn(t time.Time) {
	now := g.o.Clock.Now()
	if t.After(g.floorRef(now)) {
		g.st.Floor, g.floorAt = t.Unix(), now
	}
}

func (g *Gate) save() error {
	b, err := json.Marshal(&g.st)
	if err == nil {
		err = g.o.Store.SetMeta(metaState, b)
	}
	if err != nil {
		return fmt.Errorf("maint: state not saved: %w", err)
	}
	return nil
}
