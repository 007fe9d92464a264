package firmware

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/console"
	"github.com/aslcns/totem/internal/lograte"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// auditTTL is the expiry of an audit entry in the outbox: it must reach
// the hub however long the totem stays offline, so it is longer than any
// outage worth planning for (the CMS refuses an expired operation, and
// the audit would lose the entry).
const auditTTL = 5 * 366 * 24 * time.Hour

// auditor records the actions of the people at this totem for the hub's
// central audit, through the outbox.
type auditor struct {
	// on is Options.Audit: the firmware's own records are sent.
	on  bool
	box *outbox.Outbox
	log *slog.Logger
	now func() time.Time
	// refusals rate-limits the audit of refused console commands.
	refusals lograte.Limiter
}

// RecordAudit records an action of a person at this totem (an operator,
// a technician, a console) for the hub's central audit: made durable in
// the outbox as an operation of kind audit, in sequence with the others,
// so it reaches the hub exactly once however long the totem is offline.
// It returns once the entry is on disk. The actor and the detail are
// scrubbed of anything that looks like a PIN, PUK, CIP or CF first.
func (a *App) RecordAudit(actor, action, detail string) error {
	return a.audits.record(actor, action, detail)
}

// record is RecordAudit.
func (a *auditor) record(actor, action, detail string) error {
	e := protocol.AuditEntry{Actor: audit.Scrub(actor), Action: action, Detail: audit.Scrub(detail), At: a.now().UTC()}
	if len(e.Detail) > protocol.MaxAuditDetail {
		// Cut on a character boundary: the entry must stay UTF-8.
		e.Detail = strings.ToValidUTF8(e.Detail[:protocol.MaxAuditDetail], "")
	}
	if err := e.Check(); err != nil {
		return fmt.Errorf("firmware: audit: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("firmware: audit: %w", err)
	}
	now := a.now()
	en, err := a.box.Enqueue(cms.KindAudit, b, now, now.Add(auditTTL))
	if err != nil {
		return fmt.Errorf("firmware: audit: %w", err)
	}
	a.log.Info("audit enqueued", "seq", en.Seq, "op_id", en.ID, "action", action)
	return nil
}

// audit is RecordAudit for the firmware's own records, when Options.Audit
// is set: a failure (the outbox refusing it) is logged, the action itself
// has happened.
func (a *auditor) audit(actor, action, detail string) {
	if !a.on {
		return
	}
	if err := a.record(actor, action, detail); err != nil {
		a.log.Error("audit entry not recorded", "action", action, "err", err)
	}
}

// operatorActor names an operator in the audit by the serial of the
// operator card (not a secret: the CMS's reports name operators by it).
func operatorActor(serial string) string { return "operator:" + serial }

// auditResult names how a flow ended, for an assisted operation's record.
func auditResult(err error) string {
	if err == nil {
		return "done"
	}
	return reason(err)
}

// commandActor names the console that signed a command.
func commandActor(c *protocol.Command) string {
	if c.Key == "" {
		return "console:unsigned"
	}
	return "console:" + c.Key
}

func commandDetail(c *protocol.Command) string {
	return "name=" + c.Name + " id=" + c.ID + " role=" + c.Role
}

// command records a console command this totem ran, after it ran.
func (a *auditor) command(c *protocol.Command, r *protocol.Reply) {
	d := commandDetail(c)
	if r.OK {
		d += " ok"
		// A configuration change names the keys it changed (not their
		// values: the file is the record of those).
		var cr console.ConfigResult
		if c.Name == "config_set" && json.Unmarshal(r.Data, &cr) == nil && len(cr.Changed) > 0 {
			d += " changed=" + strings.Join(cr.Changed, ",")
		}
	} else {
		d += " failed: " + r.Error
	}
	a.audit(commandActor(c), "command", d)
}

// CommandRefused records a console command the uplink's verifier refused
// (cmdsig.Authorize's reply); it is the uplink's OnRefused. At most one
// record per key and code a minute, with the count of those not recorded
// (the verifier's log does the same): a console flooding forged or
// replayed commands cannot fill the outbox.
func (a *App) CommandRefused(c *protocol.Command, r *protocol.Reply) { a.audits.refused(c, r) }

// refused is CommandRefused.
func (a *auditor) refused(c *protocol.Command, r *protocol.Reply) {
	if !a.on {
		return
	}
	// The key of an unsigned or forged command is whatever its sender
	// wrote: such refusals share one limit per code, or varying the key
	// would flood the outbox.
	limit := c.Key + "/" + r.Code
	switch r.Code {
	case cmdsig.CodeUnsigned, cmdsig.CodeUnknownKey, cmdsig.CodeBadSignature:
		limit = "/" + r.Code
	}
	ok, held := a.refusals.Allow(limit)
	if !ok {
		return
	}
	// Refused before its signature was verified, the command is
	// anybody's text: recorded as cmdsig.Redact keeps it.
	var rc protocol.Command
	rc.Name, rc.ID, rc.Key, rc.Role = cmdsig.Redact(c, r.Code)
	d := commandDetail(&rc) + " code=" + r.Code
	if held > 0 {
		d += " not_recorded_before=" + strconv.FormatInt(held, 10)
	}
	a.audit(commandActor(&rc), "command_refused", d)
}
