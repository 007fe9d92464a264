package uplink

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// A refusal is the broker answering CONNECT with a CONNACK reason code of
// 0x80 or more. Only one of them stops the link's own attempts: a totem
// nobody can reach must not need a visit because a console borrowed its
// client id, the hub was busy or its registry was being restored. What
// differs is how often the totem asks again.
//
// 0x8A (banned) is what the fleet's broker answers a user it locked after
// eight failed authentications in a row (docs/protocol.md, "Lockout"),
// and nothing else. A locked totem stops asking: the log says so at error
// level and the panel's status line says who must act (Locked). Only a
// probe every Options.LockedRetry (a day) remains, so an unlock by ops is
// noticed without a visit; the broker refuses a locked user before it
// looks at the secret and does not count the attempt, so the probe cannot
// add to anything. A restart (after re-enrollment, which gives a new
// secret and lifts the lock) asks at once.
//
// The other definite refusals say this totem's credentials are wrong (0x86
// bad user name or password, 0x8C bad authentication method): asking again
// soon would only feed the lockout. They are still asked again, once an
// hour (Options.CredentialsRetry), because they are usually mended at the
// hub, not at the totem: the registry restored from a backup, the user put
// back, or a hub that answered 0x86 for what was really a client-id
// takeover (hubs before the precise reason codes did).
//
// Every other refusal (0x85 client id not valid, 0x87 not authorised, 0x88
// server unavailable, 0x89 server busy, 0x9F connection rate exceeded…)
// describes a state of the hub or of another client that passes: it is
// asked again after a delay that doubles from Options.RefusedMin up to
// Options.RefusedMax (15 minutes), so a busy hub is not hammered and a
// freed client id is taken back within a quarter of an hour.

// codeLocked is the CONNACK reason code of a locked user.
const codeLocked = 0x8A

// definite reports whether code refuses the credentials themselves.
func definite(code byte) bool {
	return code == 0x86 || code == 0x8A || code == 0x8C
}

// reasonText is the plain Italian text of a CONNACK reason code, for the
// panel's status line and the telemetry.
func reasonText(code byte) string {
	switch code {
	case 0x80:
		return "errore non specificato"
	case 0x81:
		return "pacchetto malformato"
	case 0x82:
		return "errore di protocollo"
	case 0x83:
		return "errore del server"
	case 0x84:
		return "versione del protocollo non supportata"
	case 0x85:
		return "identificativo del totem non valido o già in uso"
	case 0x86:
		return "nome utente o password errati"
	case 0x87:
		return "non autorizzato"
	case 0x88:
		return "server non disponibile"
	case 0x89:
		return "server occupato"
	case codeLocked:
		return "credenziali bloccate dopo troppi tentativi errati"
	case 0x8C:
		return "metodo di autenticazione errato"
	case 0x95:
		return "pacchetto troppo grande"
	case 0x97:
		return "quota superata"
	case 0x9C, 0x9D:
		return "server spostato"
	case 0x9F:
		return "troppe connessioni, frequenza superata"
	}
	return fmt.Sprintf("rifiuto sconosciuto (0x%02X)", code)
}

// refusalDelay is how long to wait after the n-th refusal in a row (n ≥ 1)
// before asking again: a random duration in the upper quarter below the
// ceiling, so that totems refused together (a hub restart, a busy hub) do
// not come back together.
func (o *Options) refusalDelay(code byte, n int) time.Duration {
	d := o.CredentialsRetry
	if code == codeLocked {
		d = o.LockedRetry
	}
	if !definite(code) {
		d = o.RefusedMin
		for i := 1; i < n && d < o.RefusedMax; i++ {
			d *= 2
		}
		d = min(d, o.RefusedMax)
	}
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// expiredText is the refusal of credentials past their expiry: the fleet's
// broker answers them 0x86 with a reason string starting "expired"
// (docs/protocol.md); asking again is not counted, but only a new
// enrollment mends it.
const expiredText = "credenziali scadute: riattivare il totem (totemctl enroll)"

// refused records a refusal (code, and the broker's reason string) and
// returns the delay before the next attempt.
func (u *Uplink) refused(code byte, serverReason string, now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.streak++
	if u.streak == 1 || u.refusal == nil {
		u.refusal = &protocol.Refusal{First: now}
	}
	r := u.refusal
	r.Code, r.Reason, r.Count, r.Last = int(code), reasonText(code), u.streak, now
	if code == 0x86 && strings.HasPrefix(serverReason, "expired") {
		r.Reason = expiredText
	}
	u.refusing = true
	d := u.o.refusalDelay(code, u.streak)
	u.retryIn.Store(int64(d))
	return d
}

// Refused returns the broker's refusal in force: the last connection
// attempt was refused with r.Code. ok is false while connected or when the
// last attempt failed for another reason (the network, a timeout).
func (u *Uplink) Refused() (r protocol.Refusal, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.refusing || u.refusal == nil {
		return protocol.Refusal{}, false
	}
	return *u.refusal, true
}

// Locked reports whether the broker's refusal in force is a lock of this
// totem's credentials: the link stops asking until ops unlocks them or the
// totem is re-enrolled.
func (u *Uplink) Locked() bool {
	r, ok := u.Refused()
	return ok && r.Code == codeLocked
}

// lastRefusal is the last run of refusals since the start, for the
// telemetry; nil if the broker never refused this process.
func (u *Uplink) lastRefusal() *protocol.Refusal {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.refusal == nil {
		return nil
	}
	r := *u.refusal
	return &r
}
