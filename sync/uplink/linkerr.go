package uplink

import (
	"context"
	"errors"
	"time"

	"github.com/aslcns/totem/sync/pki"
	"github.com/eclipse/paho.golang/autopaho"
)

// What the last failure to connect was, as a code the panel words in its
// catalogue (the maintenance menu's diagnostics).
const (
	LinkErrNetwork = "network" // no connection: the network, the host, a timeout
	LinkErrTLS     = "tls"     // the broker's certificate was refused
	LinkErrAuth    = "auth"    // the broker refused the credentials
	LinkErrLocked  = "locked"  // the credentials are locked (0x8A)
	LinkErrRefused = "refused" // another refusal by the broker
)

// linkErrorCode classifies a failure to connect.
func linkErrorCode(err error, host, caFile string) string {
	var ce *autopaho.ConnackError
	switch {
	case errors.As(err, &ce) && ce.ReasonCode == codeLocked:
		return LinkErrLocked
	case errors.As(err, &ce) && definite(ce.ReasonCode), errors.As(err, &ce) && ce.ReasonCode == 0x87:
		return LinkErrAuth
	case errors.As(err, &ce) && ce.ReasonCode >= 0x80:
		return LinkErrRefused
	case pki.Explain(err, host, caFile) != err:
		return LinkErrTLS
	}
	return LinkErrNetwork
}

func (u *Uplink) noteLinkError(err error, host string) {
	code := linkErrorCode(err, host, u.o.CAFile)
	u.mu.Lock()
	u.linkErr = code
	u.mu.Unlock()
}

// LastError is the last failure to connect since the start, as one of the
// LinkErr codes, "" when there was none.
func (u *Uplink) LastError() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.linkErr
}

// CheckCredentials runs Test credenziali on the live connection, as the
// test-credentials command does, and returns "" when it passed or what
// failed: a LinkErr code when not connected, "acl", "expired" or
// "no_answer".
func (u *Uplink) CheckCredentials(ctx context.Context) string {
	u.mu.Lock()
	cm := u.cm
	u.mu.Unlock()
	cur := u.rot.current()
	r := CredentialsReport{Totem: u.o.Totem, Expires: cur.Expires, Connected: u.connected.Load()}
	if !r.Connected || cm == nil {
		if e := u.LastError(); e != "" {
			return e
		}
		return LinkErrNetwork
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	checkACL(cctx, cmSubscriber(cm), &r)
	cancel()
	now := time.Now()
	r.judge(now)
	switch {
	case r.OK:
		return ""
	case r.Foreign != nil && r.Foreign.Code == -1:
		return "no_answer"
	case !r.Expires.IsZero() && !now.Before(r.Expires):
		return "expired"
	}
	return "acl"
}
