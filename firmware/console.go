package firmware

import (
	"context"

	"github.com/aslcns/totem/firmware/console"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// The console's types, under the names the mains and the tests know.
type (
	// Link is what the technician's actions need of the uplink.
	Link = console.Link
	// ActionResult is the Data of resend, void, correct and cancel.
	ActionResult = console.ActionResult
	// Difference is one line of a resync report.
	Difference = console.Difference
	// ResyncReport is the Data of resync.
	ResyncReport = console.ResyncReport
)

// What a resync difference is (Difference.What).
const (
	DiffPendingApplied = console.DiffPendingApplied
	DiffOutcome        = console.DiffOutcome
	DiffNotAtHub       = console.DiffNotAtHub
	DiffForeign        = console.DiffForeign
	DiffHubAhead       = console.DiffHubAhead
)

// ErrNoLink is returned by actions that need the hub when there is no link.
var ErrNoLink = console.ErrNoLink

// Commands returns the names of the console commands a totem runs, sorted.
func Commands() []string { return console.Commands() }

// Command answers a console command and records it in the audit; it is
// the uplink's OnCommand.
func (a *App) Command(ctx context.Context, c *protocol.Command) *protocol.Reply {
	r := a.console.Command(ctx, c)
	a.audits.command(c, r)
	return r
}

// consoleTotem is the App as the console sees it: console.Totem's few
// methods, without widening App's own API.
type consoleTotem struct{ a *App }

func (t consoleTotem) Telemetry() protocol.Telemetry { return t.a.Telemetry() }
func (t consoleTotem) Result(e outbox.Entry)         { t.a.Result(e) }
func (t consoleTotem) Listen(id string) (<-chan outbox.Entry, func()) {
	return t.a.waiters.Add(id)
}

func newConsole(a *App) *console.Console {
	return console.New(console.Options{Totem: a.o.Totem, Outbox: a.o.Outbox, Jobs: a.o.Jobs, Link: a.o.Link,
		Logger: a.log, Clock: a.clock, ResultWait: a.o.ResultWait, Wait: a.timeouts.resultWait, QueuedTTL: a.o.QueuedTTL, Config: configurer(a.o.Settings)}, consoleTotem{a})
}

// configurer is s as the console's Configurer, nil when there is none.
func configurer(s *Settings) console.Configurer {
	if s == nil {
		return nil
	}
	return s
}
