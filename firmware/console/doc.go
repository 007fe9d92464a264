// Package console runs the console commands a totem accepts once the
// verifier (sync/cmdsig) has let them through: status and print-queue
// reports, the send log, and the technician's actions on operations
// (resend, void, correct, cancel, refund, resync). Each command is one entry of a
// table with its handler (console.go), so the totem's commands and the
// role table can be compared by a test.
//
// It sees the totem application only through Totem, a handful of methods,
// the way an http.Handler sees only its ResponseWriter; firmware wires it.
package console

import (
	"context"
	"log/slog"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// Totem is what the commands need of the totem application.
type Totem interface {
	// Telemetry is the health report, as the uplink publishes it.
	Telemetry() protocol.Telemetry
	// Listen delivers the results of the operation id until stop is
	// called.
	Listen(id string) (results <-chan outbox.Entry, stop func())
	// Result hands the totem an entry whose outcome changed (a session
	// waiting for it hears the news).
	Result(e outbox.Entry)
	// PrintSendLog prints the newest n entries of the send log and
	// returns the reply's data.
	PrintSendLog(ctx context.Context, n int) (any, error)
	// PrintRefund prints the receipt of the refund e of the reader
	// request orig (its protocol number, original) and returns the
	// reply's data about the print job.
	PrintRefund(ctx context.Context, e outbox.Entry, original string, orig cms.ReaderRequest) (any, error)
}

// Options are the totem's parts the commands read.
type Options struct {
	Totem  string
	Outbox *outbox.Outbox
	// Jobs is the durable print queue, nil when there is none.
	Jobs *printq.Queue
	// Link returns the link to the hub, nil while there is none.
	Link   func() Link
	Logger *slog.Logger
	// Clock is the totem's clock: the wall time recorded on variations
	// and in the status, the wait for the hub's answer; default
	// hal.SystemClock.
	Clock hal.Clock
	// ResultWait bounds the wait for the hub's answer to an action;
	// QueuedTTL is the expiry of a variation.
	ResultWait, QueuedTTL time.Duration
	// Wait, when set, gives the result wait in force instead of
	// ResultWait (sync.result_wait changed live).
	Wait func() time.Duration
	// Config is the totem's configuration file (config_get, config_set);
	// nil refuses both.
	Config Configurer
}

// Console answers the console's commands for one totem.
type Console struct {
	o   Options
	t   Totem
	log *slog.Logger
}

// New returns the console of totem t. Options must be complete (firmware
// fills in the defaults).
func New(o Options, t Totem) *Console {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = hal.SystemClock{}
	}
	return &Console{o: o, t: t, log: o.Logger}
}
