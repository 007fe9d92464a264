// Package lograte keeps a line that repeats from flooding the log: the
// first occurrence of a key is logged, the ones after it within a period
// are only counted, and the first one after the period is logged with the
// count of those held back ("repeats_held_back"). An abuse that repeats is
// then a handful of lines and a count, however long it lasts; the exact
// figures belong in counters (Stats, telemetry), not in the log.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of Limiter.
const (
	DefaultEvery = time.Minute
	DefaultKeys  = 1024
)

// Limiter rate-limits log lines by key. The zero value is ready to use.
// It is safe for concurrent use.
type Limiter struct {
	// Every is the period: at most one line per key per period (default
	// DefaultEvery).
	Every time.Duration
	// Keys bounds the keys followed at once (default DefaultKeys): past it
	// the keys not seen for a period are forgotten, and if none is, new
	// keys share one.
	Keys int
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	keys map[string]*state
}

type state struct {
	next time.Time // lines before it are held back
	held int64
}

// overflow is the key new keys share when Keys are followed already.
const overflow = "\x00overflow"

// Allow reports whether the line under key is to be logged, and how many
// lines under key were held back since the last one logged.
func (l *Limiter) Allow(key string) (bool, int64) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	every, max := l.Every, l.Keys
	if every <= 0 {
		every = DefaultEvery
	}
	if max <= 0 {
		max = DefaultKeys
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = make(map[string]*state)
	}
	s := l.keys[key]
	if s == nil {
		if len(l.keys) >= max {
			for k, old := range l.keys {
				if old.held == 0 && !t.Before(old.next) {
					delete(l.keys, k)
				}
			}
		}
		if len(l.keys) >= max {
			key = overflow
			s = l.keys[key]
		}
		if s == nil {
			s = &state{}
			l.keys[key] = s
		}
	}
	if t.Before(s.next) {
		s.held++
		return false, 0
	}
	held := s.held
	s.next, s.held = t.Add(every), 0
	return true, held
}

// Log logs msg at level with args through log, unless a line under key
// was logged less than a period ago; it adds the count of the lines held
// back since the last one.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	ok, held := l.Allow(key)
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "repeats_held_back", held)
	}
	log.Log(context.Background(), level, msg, args...)
}
