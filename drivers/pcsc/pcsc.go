// Package pcsc is the PC/SC card-reader driver: it implements hal.CardReader
// on pcsc-lite through github.com/ebfe/scard, and hands each exclusive card
// session to the TS-CNS card application (drivers/cns).
//
// The scard code needs cgo and is built only with the build tag "pcsc"
// (go build -tags pcsc); without it Open returns ErrUnavailable, so the rest
// of the module builds with CGO_ENABLED=0.
//
// Two PC/SC contexts are used: one only for the GetStatusChange monitor
// (Next), one for Connect and Transmit, so a blocking wait never stalls a
// session. When pcscd stops or restarts, both contexts are released and
// established again with a 0.5 s → 5 s backoff.
package pcsc

import (
	"errors"
	"log/slog"
	"time"
)

// ErrUnavailable is returned by Open in builds without PC/SC support.
var ErrUnavailable = errors.New("pcsc: built without PC/SC support; rebuild with cgo and -tags pcsc (needs libpcsclite-dev)")

// Options configure a Reader.
type Options struct {
	// Reader is the PC/SC reader name, or a prefix of it; "" picks the
	// first reader.
	Reader string
	// Logger receives driver events (never card data); nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts to reach
	// pcscd again (defaults 0.5 s and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// Poll is the longest single GetStatusChange wait, after which the
	// reader list is checked again (default 5 s).
	Poll time.Duration
}
