package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
)

// A console command's handler: the verified command's arguments in, the
// reply's data out (nil: a reply without data) or the error the console
// shows.
type handler func(a *Console, ctx context.Context, args map[string]string) (any, error)

// consoleCommands are the console commands a totem runs, one entry each,
// the way a mux holds its handlers (style.md §22): Command looks the name
// up, so adding a command is one line here and one handler.
var commands = map[string]handler{
	"ping":   func(*Console, context.Context, map[string]string) (any, error) { return nil, nil },
	"status": (*Console).statusCommand,
	"jobs":   (*Console).jobsCommand,
	// The elenco invii: every operation with its transmissions and both
	// outcomes, newest first; never the payload.
	"sendlog": (*Console).sendLogCommand,
	// The elenco invii as a receipt: n=N newest (default 20, at most 100).
	"sendlog_print": (*Console).sendLogPrintCommand,
	"reprint":       (*Console).reprintCommand,
	"resend":        (*Console).resend,
	"void":          (*Console).void,
	"correct":       (*Console).correct,
	"cancel":        (*Console).cancel,
	"refund":        (*Console).refund,
	"resync":        func(a *Console, ctx context.Context, _ map[string]string) (any, error) { return a.resync(ctx) },
	// Remote configuration (config.go): the file's settings, secrets
	// redacted; a change validated, written atomically, applied live
	// where it can be.
	"config_get": (*Console).configGet,
	"config_set": (*Console).configSet,
}

// Commands returns the names of the console commands a totem runs, sorted:
// what the verifier's role table (sync/cmdsig) must know, no more, no less.
func Commands() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Command answers a console command.
func (a *Console) Command(ctx context.Context, c *protocol.Command) *protocol.Reply {
	r := &protocol.Reply{ID: c.ID}
	h, ok := commands[c.Name]
	if !ok {
		// The verifier's table (sync/cmdsig) let through a command this
		// totem cannot run: the two are out of step.
		r.Code, r.Error = cmdsig.CodeUnknown, "unknown command "+c.Name
		a.log.Info("command", "name", c.Name, "id", c.ID, "ok", r.OK)
		return r
	}
	v, err := h(a, ctx, c.Args)
	if err == nil && v != nil {
		r.Data, err = json.Marshal(v)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.OK = true
	a.log.Info("command", "name", c.Name, "id", c.ID, "ok", r.OK)
	return r
}

func (a *Console) statusCommand(context.Context, map[string]string) (any, error) {
	t := a.t.Telemetry()
	t.V, t.Totem, t.At = protocol.Version, a.o.Totem, a.o.Clock.Now().UTC()
	return t, nil
}

func (a *Console) jobsCommand(context.Context, map[string]string) (any, error) {
	if a.o.Jobs == nil {
		return nil, errors.New("no print queue")
	}
	jobs, err := a.o.Jobs.List(20)
	if err != nil {
		return nil, err
	}
	rows := make([]protocol.PrintJob, 0, len(jobs))
	for _, j := range jobs {
		rows = append(rows, protocol.PrintJob{ID: j.ID, OpID: j.OpID, Title: j.Doc.Title, State: j.State, Attempts: j.Attempts, Copies: j.Copies, LastErr: j.LastErr, Created: j.Created})
	}
	return rows, nil
}

func (a *Console) sendLogCommand(_ context.Context, args map[string]string) (any, error) {
	n := 50
	fmt.Sscan(args["n"], &n)
	entries, err := a.o.Outbox.Recent(min(max(n, 1), 500))
	if err != nil {
		return nil, err
	}
	rows := make([]protocol.SendLogRow, 0, len(entries))
	for _, e := range entries {
		w := protocol.SendLogRow{Seq: e.Seq, OpID: e.ID, Kind: e.Kind, Created: e.Created, Attempts: e.Attempts, LastSent: e.LastSent,
			State: entryState(e), Stamp: e.Stamp}
		if e.Result != nil {
			w.Protocol, w.Transport, w.Processing = e.Result.Transport.Protocol, e.Result.Transport.Status, e.Result.Processing.Status
			w.Errors, w.Duplicate = e.Result.Processing.Errors, e.Result.Duplicate
		}
		rows = append(rows, w)
	}
	return rows, nil
}

func (a *Console) sendLogPrintCommand(ctx context.Context, args map[string]string) (any, error) {
	n := 0
	if s := args["n"]; s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			return nil, errors.New("sendlog_print: n must be a positive number")
		}
	}
	return a.t.PrintSendLog(ctx, n)
}

func (a *Console) reprintCommand(_ context.Context, args map[string]string) (any, error) {
	var id uint64
	if _, err := fmt.Sscan(args["id"], &id); err != nil || a.o.Jobs == nil {
		return nil, errors.New("reprint needs id=JOB")
	}
	return nil, a.o.Jobs.Reprint(id)
}
