package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
)

// The audit's commands on the hub's command topic, with the others of
// accountCommands' kind: cmdsig's hub role table names their roles.
var auditCommands = commandTable{
	"audit":        (*commands).auditList,
	"audit_verify": (*commands).auditVerify,
	"audit_add":    (*commands).auditAdd,
}

var errNoAudit = errors.New("this hub keeps no audit")

// Audit records an action of the hub's own (a credential event, an ops
// console action) in the audit; without an audit it does nothing. A
// failure is logged: the action itself has happened.
func (h *Hub) Audit(actor, action, detail string) {
	if h.o.Audit == nil {
		return
	}
	if _, err := h.o.Audit.Append(audit.Entry{Source: audit.SourceHub, Actor: actor, Action: action, Detail: detail}); err != nil {
		h.limited(slog.LevelError, "audit", "audit record not written", "action", action, "err", err)
	}
}

// auditOps appends the entries the operations of kind audit of a batch
// carry, in one commit, each keyed by its op id so that a resent one is
// recorded once. It runs after the CMS settled their sequence numbers and
// before the totems are answered: an entry a totem sees acknowledged is
// in the audit.
func (h *Hub) auditOps(ops []*protocol.Op) error {
	if h.o.Audit == nil || len(ops) == 0 {
		return nil
	}
	es := make([]audit.Entry, len(ops))
	for i, op := range ops {
		e, err := protocol.DecodeAuditEntry(op.Payload)
		if err != nil {
			// The CMS accepted its shape, the stricter check refuses it:
			// record that something came, without what.
			e = &protocol.AuditEntry{Actor: "totem", Action: "audit_malformed", Detail: err.Error()}
		}
		es[i] = audit.Entry{Source: op.Totem, Actor: e.Actor, Action: e.Action, Detail: e.Detail, OpID: op.ID, TotemAt: e.At}
	}
	_, err := h.o.Audit.AppendAll(es)
	return err
}

// auditCommand records a console command the hub ran or refused. Refusals
// of one console and code are recorded at most once a minute (with the
// count of those not recorded), like their log lines: a console flooding
// unsigned commands must not fill the audit.
func (h *Hub) auditCommand(console string, cmd *protocol.Command, reply *protocol.Reply, refused bool) {
	if h.o.Audit == nil || cmd == nil {
		return
	}
	name, id, key, role := cmd.Name, cmd.ID, cmd.Key, cmd.Role
	if refused {
		// Refused before its signature was verified, the command is
		// anybody's text: only what cmdsig.Redact keeps of it (all of
		// it when a trusted key vouched for it).
		name, id, key, role = cmdsig.Redact(cmd, reply.Code)
	}
	actor := "console:" + console
	if key != "" {
		actor += " key:" + key
	}
	detail := fmt.Sprintf("name=%s id=%s role=%s", name, id, role)
	action := "command"
	switch {
	case refused:
		ok, held := h.auditRate.Allow("refused/" + console + "/" + reply.Code)
		if !ok {
			return
		}
		action, detail = "command_refused", detail+" code="+reply.Code
		if held > 0 {
			detail += " not_recorded_before=" + strconv.FormatInt(held, 10)
		}
	case reply.OK:
		detail += " ok"
	default:
		detail += " failed: " + reply.Error
	}
	h.Audit(actor, action, detail)
}

// auditList answers audit: args totem (a totem id, or "hub"), actor (a
// part of it), action, since and until (RFC 3339 or YYYY-MM-DD, hub time)
// and max (default and at most 1000): the newest that match, oldest first.
func (cs *commands) auditList(cmd *protocol.Command, _ string) (json.RawMessage, error) {
	h := cs.h
	if h.o.Audit == nil {
		return nil, errNoAudit
	}
	f := audit.Filter{Source: cmd.Args["totem"], Actor: cmd.Args["actor"], Action: cmd.Args["action"]}
	for key, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := cmd.Args[key]; v != "" {
			t, err := parseWhen(v)
			if err != nil {
				return nil, fmt.Errorf("%s: want RFC 3339 or YYYY-MM-DD", key)
			}
			*dst = t
		}
	}
	if v := cmd.Args["max"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, errors.New("max: want a positive number")
		}
		f.Max = n
	}
	return jsonList(h.o.Audit.List(f))
}

func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, v)
}

// auditVerify answers audit_verify: the chain recomputed, and the first
// broken record named.
func (cs *commands) auditVerify(*protocol.Command, string) (json.RawMessage, error) {
	h := cs.h
	if h.o.Audit == nil {
		return nil, errNoAudit
	}
	v, err := h.o.Audit.Verify()
	if err != nil {
		return nil, err
	}
	if !v.OK {
		h.log.Error("audit chain broken", "record", v.Broken, "problem", v.Problem)
	}
	return json.Marshal(v)
}

// auditAdd answers audit_add: an entry the console (the ops desk, a
// technician) adds, args action and detail; the actor is the console and
// its signing key, never what the arguments say.
func (cs *commands) auditAdd(cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	if h.o.Audit == nil {
		return nil, errNoAudit
	}
	e := protocol.AuditEntry{Actor: "console:" + console + " key:" + cmd.Key, Action: cmd.Args["action"], Detail: cmd.Args["detail"]}
	if err := e.Check(); err != nil {
		return nil, err
	}
	r, err := h.o.Audit.Append(audit.Entry{Source: audit.SourceHub, Actor: e.Actor, Action: e.Action, Detail: e.Detail})
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// isAudit reports whether an applied operation is an audit entry to record.
func isAudit(op *protocol.Op, out cms.Outcome) bool { return op.Kind == cms.KindAudit && out.Accepted }
