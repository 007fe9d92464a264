package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// commands is the console's side of the hub: it answers the commands on
// the hub's command topic (report, sendlog, fleet, and the tables of
// technicians.go, accounts.go, audit.go, the fleet jobs).
type commands struct{ h *Hub }

// command answers a console's request on the hub's command topic:
// "report" (Reportistica) with args totem, operator, kind, outcome,
// from and to (YYYY-MM-DD, hub time) and by_day=true; "sendlog" (the
// elenco invii) with args totem, outcome, from, to, before and max;
// "sendlog_show" with arg n; "fleet" (the fleet registry) with args
// offline=true, alert=true and backlog=N.
func (cs *commands) command(p *paho.Publish) {
	h := cs.h
	if p.Properties == nil {
		return
	}
	rt := p.Properties.ResponseTopic
	console, ok := strings.CutPrefix(rt, protocol.HubRoot+"/reply/")
	if !ok || !protocol.ValidTotemID(console) {
		h.limited(slog.LevelWarn, "response_topic", "console command with a foreign response topic dropped", "response_topic_bytes", len(rt))
		return
	}
	reply := &protocol.Reply{V: protocol.Version, ID: "invalid"}
	var refused *protocol.Reply
	cmd, err := protocol.DecodeCommand(p.Payload)
	invalid := err != nil
	if err == nil {
		refused = cmdsig.Authorize(h.o.Verifier, cmd, h.log.With("console", console))
	}
	switch {
	case err != nil:
		reply.Error = "invalid command"
	case refused != nil:
		reply = refused
	default:
		reply = cs.run(cmd, console)
	}
	cs.count(invalid, refused, reply)
	id := reply.ID
	if refused != nil && !cmdsig.Vouched(refused.Code) {
		id = fmt.Sprintf("<%d bytes>", len(id)) // anybody's text: see cmdsig.Vouched
	}
	h.log.Info("console command", "console", console, "id", id, "ok", reply.OK)
	if !invalid {
		h.auditCommand(console, cmd, reply, refused != nil)
	}
	b, _ := protocol.Marshal(reply)
	if err := h.publish(&paho.Publish{Topic: rt, QoS: 1, Payload: b,
		Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}}); err != nil {
		h.log.Warn("console reply not sent", "err", err)
	}
}

// commandTable maps console commands to their handlers on the commands
// side (technicians.go, accounts.go, audit.go).
type commandTable map[string]func(cs *commands, cmd *protocol.Command, console string) (json.RawMessage, error)

// using makes an entry of a commandTable of f, a command that needs a
// store the hub may not keep: get returns it, or says why there is none.
func using[S any](get func(*commands) (S, error), f func(cs *commands, st S, cmd *protocol.Command, console string) (json.RawMessage, error)) func(*commands, *protocol.Command, string) (json.RawMessage, error) {
	return func(cs *commands, cmd *protocol.Command, console string) (json.RawMessage, error) {
		st, err := get(cs)
		if err != nil {
			return nil, err
		}
		return f(cs, st, cmd, console)
	}
}

// handler answers an authorised console command from console.
type handler func(cmd *protocol.Command, console string) (json.RawMessage, error)

// lookup returns the handler of the command name, nil for an unknown
// one.
func (cs *commands) lookup(name string) handler {
	h := cs.h
	args := func(f func(map[string]string) (json.RawMessage, error)) handler {
		return func(cmd *protocol.Command, _ string) (json.RawMessage, error) { return f(cmd.Args) }
	}
	switch {
	case name == "report":
		return args(cs.report)
	case name == "fleet":
		return args(h.fleet)
	case name == "sendlog":
		return args(cs.sendLog)
	case name == "sendlog_show":
		return args(cs.sendLogShow)
	}
	for _, table := range []commandTable{technicianCommands, accountCommands, auditCommands} {
		if f := table[name]; f != nil {
			return func(cmd *protocol.Command, console string) (json.RawMessage, error) { return f(cs, cmd, console) }
		}
	}
	if strings.HasPrefix(name, "job_") && h.o.Jobs != nil {
		return func(cmd *protocol.Command, console string) (json.RawMessage, error) {
			return h.o.Jobs(console, cmd.Name, cmd.Args)
		}
	}
	return nil
}

// run runs an authorised command and returns its reply.
func (cs *commands) run(cmd *protocol.Command, console string) *protocol.Reply {
	reply := &protocol.Reply{V: protocol.Version, ID: cmd.ID}
	f := cs.lookup(cmd.Name)
	if f == nil {
		reply.Error = "unknown command " + cmd.Name
		return reply
	}
	var err error
	if reply.Data, err = f(cmd, console); err != nil {
		reply.Error = err.Error()
	} else {
		reply.OK = true
	}
	return reply
}

// count counts a console command in the hub's Stats.
func (cs *commands) count(invalid bool, refused, reply *protocol.Reply) {
	st := &cs.h.stats
	switch {
	case invalid:
		st.refuse(codeInvalid)
	case refused != nil:
		st.refuse(refused.Code)
	case reply.OK:
		st.CommandsOK.Add(1)
	default:
		st.CommandsFailed.Add(1)
	}
}

func (cs *commands) report(args map[string]string) (json.RawMessage, error) {
	h := cs.h
	r, ok := h.o.Backend.(cms.Reporter)
	if !ok {
		return nil, errors.New("this CMS backend has no reports")
	}
	f := cms.ReportFilter{Totem: args["totem"], Operator: args["operator"], Kind: args["kind"],
		Outcome: args["outcome"], ByDay: args["by_day"] == "true"}
	if err := parseDates(args, &f.From, &f.To); err != nil {
		return nil, err
	}
	return jsonList(r.Report(f))
}

// fleet answers the fleet command from the registry: at once, whatever
// the fleet's size. (On the Hub, with the fleet registry: the fleet's
// tests call it.)
func (h *Hub) fleet(args map[string]string) (json.RawMessage, error) {
	if h.o.Fleet == nil {
		return nil, errNoFleet
	}
	var f FleetFilter
	f.Offline = args["offline"] == "true"
	f.Alert = args["alert"] == "true"
	if v := args["backlog"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errors.New("backlog: want a number of operations")
		}
		f.Backlog = n
	}
	max := 50
	if v := args["max"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return nil, errors.New("max: want 1 to 200")
		}
		max = n
	}
	// A page stays well under the 64 KiB a console decodes: entries are
	// bounded (fleet.go), and the console asks for the next page after
	// the last totem of this one.
	all := h.o.Fleet.List(f)
	after := args["after"]
	i := sort.Search(len(all), func(i int) bool { return all[i].Totem > after })
	page := FleetPage{At: time.Now().UTC(), SilentAfter: h.o.Fleet.SilentAfter().Seconds(), Total: len(all), Totems: all[i:]}
	if len(page.Totems) > max {
		page.Totems = page.Totems[:max]
		page.Next = page.Totems[max-1].Totem
	}
	h.credentialsExpiry(page.Totems) // fleet.go
	return json.Marshal(page)
}

// SendLogPage is the Data of the hub's sendlog command.
type SendLogPage struct {
	Rows []cms.Transmission `json:"rows"`
	Next uint64             `json:"next,omitempty"` // before= of the next page; 0: no more
}

func (cs *commands) sendLog(args map[string]string) (json.RawMessage, error) {
	h := cs.h
	sl, err := sendLogger(h.o.Backend)
	if err != nil {
		return nil, err
	}
	f := cms.SendLogFilter{Totem: args["totem"], Outcome: args["outcome"]}
	if f.Totem != "" && !protocol.ValidTotemID(f.Totem) {
		return nil, errors.New("totem: invalid id")
	}
	if err := parseDates(args, &f.From, &f.To); err != nil {
		return nil, err
	}
	if v := args["before"]; v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, errors.New("before: want a number")
		}
		f.Before = n
	}
	if v := args["max"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return nil, errors.New("max: want 1 to 500")
		}
		f.Max = n
	}
	rows, next, err := sl.SendLog(f)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []cms.Transmission{}
	}
	return json.Marshal(SendLogPage{Rows: rows, Next: next})
}

func (cs *commands) sendLogShow(args map[string]string) (json.RawMessage, error) {
	h := cs.h
	sl, err := sendLogger(h.o.Backend)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(args["n"], 10, 64)
	if err != nil || n == 0 {
		return nil, errors.New("sendlog_show needs n=NUMBER")
	}
	t, err := sl.Transmission(n)
	if errors.Is(err, cms.ErrNotFound) {
		return nil, fmt.Errorf("send log entry %d not found", n)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// parseDates parses args from and to (YYYY-MM-DD) into from and to, left
// as they are when the argument is absent.
func parseDates(args map[string]string, from, to *time.Time) error {
	for key, dst := range map[string]*time.Time{"from": from, "to": to} {
		if v := args[key]; v != "" {
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return fmt.Errorf("%s: want YYYY-MM-DD", key)
			}
			*dst = t
		}
	}
	return nil
}

// jsonList marshals rows, an empty list rather than null when there are
// none, or returns err.
func jsonList[T any](rows []T, err error) (json.RawMessage, error) {
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []T{}
	}
	return json.Marshal(rows)
}
