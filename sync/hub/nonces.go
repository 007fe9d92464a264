package hub

import (
	"context"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
)

// SharedNonces is the record of executed console commands that several
// hub processes share (cmdsig.Replay): with [store] url, one table of the
// PostgreSQL store (pgstore's AdmitNonce), so that a console command
// replayed to another hub instance is refused as replayed, not run twice.
//
// The command's validity is checked on this hub's clock (NTP-synchronised
// on a server) with cmdsig.Skew, as cmdsig.Record does; the id is kept
// until its expiry plus Skew, and the store purges it an hour after that
// on the database's clock: a hub's clock an hour behind the database's
// would be needed for a purged id to be admitted again. Unlike the bbolt
// record there is no per-key bound: only commands signed by a trusted
// key reach the record.
type SharedNonces struct {
	// Record records (key, id) valid until expires and reports whether it
	// was new; exactly one of concurrent callers with one (key, id) gets
	// true.
	Record  func(ctx context.Context, key, id string, expires time.Time) (bool, error)
	Now     func() time.Time // default time.Now
	Timeout time.Duration    // one Admit; default 5 s
}

var _ cmdsig.Replay = (*SharedNonces)(nil)

// Admit implements cmdsig.Replay: nil when the command is live and new,
// else a *cmdsig.Refusal (not_yet_valid, expired, replayed, record_error).
func (n *SharedNonces) Admit(key, id string, issued, expires time.Time) error {
	now := time.Now()
	if n.Now != nil {
		now = n.Now()
	}
	if issued.After(now.Add(cmdsig.Skew)) {
		return &cmdsig.Refusal{Code: cmdsig.CodeNotYetValid, Reason: "issued " + issued.Sub(now).Round(time.Second).String() + " after this clock"}
	}
	exp := expires.Add(cmdsig.Skew)
	if exp.Before(now) {
		return &cmdsig.Refusal{Code: cmdsig.CodeExpired, Reason: "expired " + now.Sub(exp).Round(time.Second).String() + " ago"}
	}
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	fresh, err := n.Record(ctx, key, id, exp)
	switch {
	case err != nil:
		return &cmdsig.Refusal{Code: cmdsig.CodeRecord, Reason: err.Error()}
	case !fresh:
		return &cmdsig.Refusal{Code: cmdsig.CodeReplayed, Reason: "command id already executed"}
	}
	return nil
}
