package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"time"
)

// Login limits: an account is locked after maxAccountFailures wrong
// logins in a row, for lockFor; an address that failed maxIPFailures
// times within ipWindow is refused until the window passes. Sessions end
// after idleFor without a request, and after maxSessionAge in any case.
const (
	maxAccountFailures = 5
	lockFor            = 15 * time.Minute
	maxIPFailures      = 20
	ipWindow           = 15 * time.Minute
	idleFor            = 30 * time.Minute
	maxSessionAge      = 12 * time.Hour
	maxSessions        = 1024 // more logged in at once: the oldest ends
	maxTracked         = 4096 // failure records kept (accounts and addresses)
)

// session is one logged-in user.
type session struct {
	user, role, lang string
	created, seen    time.Time
}

// failures counts an account's or an address's failed logins.
type failures struct {
	n      int
	first  time.Time
	locked time.Time // zero: not locked
}

// guard keeps sessions and login failures, in memory: a restarted hub
// logs everyone out, and forgets the counts (the argon2 cost bounds what
// a restart gives an attacker).
type guard struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[[32]byte]*session // by the token's SHA-256: a memory dump gives no cookie
	accounts map[string]*failures
	ips      map[string]*failures
	lastStep map[string]int64 // last TOTP step accepted per account: a code works once
}

func newGuard(now func() time.Time) *guard {
	return &guard{now: now, sessions: map[[32]byte]*session{}, accounts: map[string]*failures{},
		ips: map[string]*failures{}, lastStep: map[string]int64{}}
}

// clientIP is the request's peer address, without the port. A proxy's
// X-Forwarded-For is not trusted: it would let anyone choose their IP.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// lockedAccount reports until when name is locked (zero: it is not).
func (g *guard) lockedAccount(name string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.accounts[name]; f != nil && g.now().Before(f.locked) {
		return f.locked
	}
	return time.Time{}
}

// ipBlocked reports whether ip failed too often lately.
func (g *guard) ipBlocked(ip string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.ips[ip]
	return f != nil && g.now().Sub(f.first) < ipWindow && f.n >= maxIPFailures
}

// failed counts a failed login of name from ip; it reports whether the
// account is locked by it, and whether the address just reached its limit.
func (g *guard) failed(name, ip string) (locked, blocked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	count := func(m map[string]*failures, k string, window time.Duration) *failures {
		f := m[k]
		if f == nil || (window > 0 && now.Sub(f.first) >= window) {
			if f == nil && len(m) >= maxTracked {
				prune(m, now)
			}
			f = &failures{first: now}
			m[k] = f
		}
		f.n++
		return f
	}
	blocked = count(g.ips, ip, ipWindow).n == maxIPFailures
	if name == "" {
		return false, blocked
	}
	f := count(g.accounts, name, 0)
	if f.n >= maxAccountFailures {
		f.locked, f.n = now.Add(lockFor), 0
		return true, blocked
	}
	return false, blocked
}

// prune forgets records with no lock in force and older than the window,
// then, if still full, any one: memory stays bounded whatever the names
// tried.
func prune(m map[string]*failures, now time.Time) {
	for k, f := range m {
		if now.After(f.locked) && now.Sub(f.first) >= ipWindow {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < maxTracked {
			break
		}
		delete(m, k)
	}
}

// succeeded clears name's failures and records its TOTP step; it reports
// false if that step (or a later one) was already used: a code seen by
// someone over a shoulder does not log in twice.
func (g *guard) succeeded(name string, step int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if step <= g.lastStep[name] {
		return false
	}
	g.lastStep[name] = step
	delete(g.accounts, name)
	return true
}

// unlock lifts name's lock; it reports whether there was one.
func (g *guard) unlock(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.accounts[name]
	delete(g.accounts, name)
	return f != nil && g.now().Before(f.locked)
}

// Locked returns the accounts locked now and until when.
func (g *guard) locked() map[string]time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]time.Time{}
	for k, f := range g.accounts {
		if g.now().Before(f.locked) {
			out[k] = f.locked
		}
	}
	return out
}

func tokenKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// start opens a session and returns its token.
func (g *guard) start(user, role, lang string) string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	tok := base64.RawURLEncoding.EncodeToString(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.sessions) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, s := range g.sessions {
			if at.IsZero() || s.seen.Before(at) {
				oldest, at = k, s.seen
			}
		}
		delete(g.sessions, oldest)
	}
	g.sessions[tokenKey(tok)] = &session{user: user, role: role, lang: lang, created: now, seen: now}
	return tok
}

// lookup returns the session of tok, refreshed, or nil when there is none
// or it expired.
func (g *guard) lookup(tok string) *session {
	if tok == "" {
		return nil
	}
	k := tokenKey(tok)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[k]
	if s == nil {
		return nil
	}
	now := g.now()
	if now.Sub(s.seen) >= idleFor || now.Sub(s.created) >= maxSessionAge {
		delete(g.sessions, k)
		return nil
	}
	s.seen = now
	c := *s
	return &c
}

// setLang changes the language of tok's session.
func (g *guard) setLang(tok, lang string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.sessions[tokenKey(tok)]; s != nil {
		s.lang = lang
	}
}

// end closes tok's session.
func (g *guard) end(tok string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.sessions, tokenKey(tok))
}
