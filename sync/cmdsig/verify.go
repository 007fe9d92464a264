package cmdsig

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// Refusal codes, in the reply's "code" and in the log line.
const (
	CodeUnsigned     = "unsigned"      // no key or no signature
	CodeUnknownKey   = "unknown_key"   // the key is not trusted here
	CodeBadSignature = "bad_signature" // the signature does not match
	CodeWrongTarget  = "wrong_target"  // signed for another totem, or for the hub
	CodeBadNonce     = "bad_nonce"     // an id too short to be a nonce
	CodeRoleDenied   = "role_denied"   // the key may not sign as that role
	CodeUnknown      = "unknown_command"
	CodeOutOfRole    = "out_of_role"   // the command needs a higher role
	CodeBadValidity  = "bad_validity"  // expiry before issue, or too far ahead
	CodeExpired      = "expired"       // expired (with the skew allowance)
	CodeNotYetValid  = "not_yet_valid" // issued in the future of a synchronised clock
	CodeReplayed     = "replayed"      // this key and id were executed already
	CodeRecordFull   = "record_full"   // too many live command ids to record another
	CodeRecord       = "record_error"  // the record could not be written
)

// Codes lists every refusal code, for counters and reports.
var Codes = []string{CodeUnsigned, CodeUnknownKey, CodeBadSignature, CodeWrongTarget, CodeBadNonce, CodeRoleDenied,
	CodeUnknown, CodeOutOfRole, CodeBadValidity, CodeExpired, CodeNotYetValid, CodeReplayed, CodeRecordFull, CodeRecord}

// Refusal is why a command is not run.
type Refusal struct {
	Code   string
	Reason string
}

func (r *Refusal) Error() string { return "cmdsig: " + r.Code + ": " + r.Reason }

func refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Limits of a command's validity.
const (
	// MaxTTL is the longest validity a command may ask for: it bounds how
	// long its id has to be recorded.
	MaxTTL = 15 * time.Minute
	// Skew is the allowance for the difference between the console's and
	// the receiver's clocks.
	Skew = 2 * time.Minute
	// minNonce is the shortest command id accepted: 64 random bits in hex.
	minNonce = 16
)

// Replay admits each (key, id) once until it expires; Record is the
// durable one.
type Replay interface {
	Admit(key, id string, issued, expires time.Time) error
}

// LogEvery is how often a Verifier logs refusals of one code: the first
// of a burst, then one line per LogEvery with how many it did not log. A
// flood of unsigned or forged commands, which anybody on the network can
// send, must not write a line each to the totem's flash.
const LogEvery = time.Minute

// Verifier checks commands for one target with a set of trusted keys.
type Verifier struct {
	target string
	keys   atomic.Pointer[map[string]PublicKey] // SetKeys replaces the whole
	replay Replay

	refused map[string]*atomic.Uint64 // by code; the map is never written after NewVerifier

	mu     sync.Mutex
	now    func() time.Time
	after  func(time.Duration, func()) // time.AfterFunc; tests call the summary themselves
	logged map[string]time.Time        // code → when its last line was written
	held   map[string]uint64           // code → refusals not logged since that line
	sumLog *slog.Logger                // where the pending summary goes
}

// NewVerifier returns a Verifier of the commands for target (a totem id or
// HubTarget). With no keys every command is refused.
func NewVerifier(target string, keys []PublicKey, replay Replay) *Verifier {
	m := make(map[string]PublicKey, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	v := &Verifier{target: target, replay: replay, refused: make(map[string]*atomic.Uint64, len(Codes)),
		now: time.Now, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		logged: make(map[string]time.Time), held: make(map[string]uint64)}
	for _, c := range Codes {
		v.refused[c] = new(atomic.Uint64)
	}
	v.keys.Store(&m)
	return v
}

// Refused returns how many commands the Verifier refused through
// Authorize since it was made, by code; codes never seen are left out.
func (v *Verifier) Refused() map[string]uint64 {
	out := make(map[string]uint64)
	for c, n := range v.refused {
		if n := n.Load(); n > 0 {
			out[c] = n
		}
	}
	return out
}

// refusal counts a refusal and reports whether to log it now, with how
// many of its code were not logged before it.
func (v *Verifier) refusal(code string, log *slog.Logger) (bool, uint64) {
	if n := v.refused[code]; n != nil {
		n.Add(1)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	last, ok := v.logged[code]
	if !ok || now.Sub(last) >= LogEvery {
		held := v.held[code]
		delete(v.held, code)
		v.logged[code] = now
		return true, held
	}
	if len(v.held) == 0 {
		v.after(LogEvery-now.Sub(last), v.summary)
	}
	v.held[code]++
	v.sumLog = log
	return false, 0
}

// summary logs the refusals held back since the last line of their code.
func (v *Verifier) summary() {
	v.mu.Lock()
	held, log := v.held, v.sumLog
	v.held, v.sumLog = make(map[string]uint64), nil
	now := v.now()
	for c := range held {
		v.logged[c] = now
	}
	v.mu.Unlock()
	codes := make([]string, 0, len(held))
	for c := range held {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		log.Warn("commands refused", "code", c, "count", held[c], "not_logged_within", LogEvery)
	}
}

// Keys reports how many keys the Verifier trusts.
func (v *Verifier) Keys() int { return len(*v.keys.Load()) }

// SetKeys replaces the trusted keys (console_keys changed live): commands
// verified after it returns are checked against keys only.
func (v *Verifier) SetKeys(keys []PublicKey) {
	m := make(map[string]PublicKey, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	v.keys.Store(&m)
}

// Verify returns nil when c may run here, or a *Refusal. The checks that
// need no state come first, so nothing unsigned or forged reaches the
// replay record; the id is recorded last, before the command runs.
func (v *Verifier) Verify(c *protocol.Command) error {
	if c.Key == "" || len(c.Sig) == 0 {
		return refuse(CodeUnsigned, "command %s is not signed", shown(c.Name, known(c.Name)))
	}
	k, ok := (*v.keys.Load())[c.Key]
	if !ok {
		return refuse(CodeUnknownKey, "key %s is not trusted here", shown(c.Key, false))
	}
	if !ed25519.Verify(k.Key, Canonical(c), c.Sig) {
		return refuse(CodeBadSignature, "signature of key %s does not match", c.Key)
	}
	if c.To != v.target {
		return refuse(CodeWrongTarget, "signed for %q", c.To)
	}
	if len(c.ID) < minNonce {
		return refuse(CodeBadNonce, "id shorter than %d characters", minNonce)
	}
	if rank(c.Role) == 0 || rank(c.Role) > rank(k.Role) {
		return refuse(CodeRoleDenied, "key %s (%s) cannot sign as %q", c.Key, k.Role, c.Role)
	}
	need, ok := Needs(v.target, c.Name)
	if !ok {
		return refuse(CodeUnknown, "unknown command %s", c.Name)
	}
	if rank(c.Role) < rank(need) {
		return refuse(CodeOutOfRole, "%s needs role %s, not %s", c.Name, need, c.Role)
	}
	if c.Issued.IsZero() || !c.Expires.After(c.Issued) || c.Expires.Sub(c.Issued) > MaxTTL {
		return refuse(CodeBadValidity, "validity must be more than 0 and at most %v", MaxTTL)
	}
	if v.replay == nil {
		return refuse(CodeRecord, "no replay record")
	}
	return v.replay.Admit(c.Key, c.ID, c.Issued, c.Expires)
}

// Vouched reports whether a refusal with code came after the command's
// signature was verified, so that a trusted key vouched for every field of
// it. Before, the command is whatever anybody on the network sent: its id
// (free text), key (a totem id's syntax, which a codice fiscale has), name
// and role may carry a citizen's data, so Authorize logs them (and Verify's
// reasons quote them) only where the receiver knows the value — a command
// of its table, a key it trusts, a role — and otherwise their length.
func Vouched(code string) bool {
	switch code {
	case CodeUnsigned, CodeUnknownKey, CodeBadSignature:
		return false
	}
	return true
}

// Redact returns the name, id, key and role of c as a log line or an audit
// record may name them after a refusal with code: as they are when a
// trusted key vouched for them (Vouched); otherwise a command name of the
// tables and a role as they are, and of anything else only its length.
func Redact(c *protocol.Command, code string) (name, id, key, role string) {
	if Vouched(code) {
		return c.Name, c.ID, c.Key, c.Role
	}
	return shown(c.Name, known(c.Name)), shown(c.ID, false), shown(c.Key, false), shown(c.Role, ValidRole(c.Role))
}

// shown is s where it is a value the receiver knows, and otherwise only
// its length.
func shown(s string, known bool) string {
	if known || s == "" {
		return s
	}
	return fmt.Sprintf("<%d bytes>", len(s))
}

// known reports whether name is a command of any target's table.
func known(name string) bool {
	_, t := totemRoles[name]
	_, l := linkRoles[name]
	_, h := hubRoles[name]
	return t || l || h
}

// trusts reports whether v trusts the key id.
func (v *Verifier) trusts(id string) bool {
	_, ok := (*v.keys.Load())[id]
	return ok
}

// Authorize verifies cmd with v (nil refuses everything) and returns nil
// when it may run, or the coded refusal to send back. A refusal is counted
// (Refused) and logged with the command's name, id, key and role (only
// their lengths where no trusted key vouched for them, see Vouched), never
// its arguments: the first of its code, then at most one line per LogEvery
// with the count of those not logged.
func Authorize(v *Verifier, cmd *protocol.Command, log *slog.Logger) *protocol.Reply {
	var err error = refuse(CodeUnknownKey, "no console keys are trusted here")
	if v != nil {
		err = v.Verify(cmd)
	}
	if err == nil {
		return nil
	}
	r := &Refusal{Code: CodeRecord, Reason: err.Error()}
	errors.As(err, &r)
	write, held := true, uint64(0)
	if v != nil {
		write, held = v.refusal(r.Code, log)
	}
	if write {
		name, id, key, role := Redact(cmd, r.Code)
		if v != nil && v.trusts(cmd.Key) {
			key = cmd.Key // a key of this verifier, whatever the signature
		}
		args := []any{"code", r.Code, "reason", r.Reason, "name", name, "id", id, "key", key, "role", role}
		if held > 0 {
			args = append(args, "not_logged_before", held)
		}
		log.Warn("command refused", args...)
	}
	return &protocol.Reply{V: protocol.Version, ID: cmd.ID, Code: r.Code, Error: "refused: " + r.Reason}
}
