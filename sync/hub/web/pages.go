package web

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// action is a technician action on a totem: the command it sends and the
// form fields it takes as arguments (nothing else is passed on).
type action struct {
	Name, Command, Text string
	Args                []string
}

// totemActions are the totem page's actions, in the page's order; the
// role each needs is sync/cmdsig's.
var totemActions = []action{
	{Name: "print", Command: "sendlog_print", Text: "act_print"}, // the elenco invii on paper: the printer test
	{Name: "resend", Command: "resend", Text: "act_resend", Args: []string{"id"}},
	{Name: "void", Command: "void", Text: "act_void", Args: []string{"id"}},
	{Name: "correct", Command: "correct", Text: "act_correct", Args: []string{"id", "consents", "payment"}},
	{Name: "cancel", Command: "cancel", Text: "act_cancel", Args: []string{"id", "reason"}},
	{Name: "resync", Command: "resync", Text: "act_resync"},
}

type actionView struct {
	action
	Allowed bool
}

type totemBody struct {
	Row        consoleRow
	Status     *hub.TotemStatus
	Devices    []string
	Storage    string
	Last       string
	Log        []cms.Transmission
	Actions    []actionView
	Result     string // the reply of the action just run
	Error      string
	TotemLog   []protocol.SendLogRow // asked of the totem (?ask=sendlog)
	Quarantine []protocol.SendLogRow // its entries in quarantine
	Events     []eventRow
}

type eventRow struct{ At, Level, Code, Message string }

func (c *console) findTotem(id string) (*hub.TotemStatus, bool) {
	if !protocol.ValidTotemID(id) {
		return nil, false
	}
	for _, ts := range c.List(hub.FleetFilter{}) {
		if ts.Totem == id {
			return &ts, true
		}
	}
	return nil, false
}

func (c *console) totemBody(r *http.Request, ts *hub.TotemStatus, L map[string]string) totemBody {
	s := current(r)
	exp := c.expiries()
	b := totemBody{Status: ts}
	rows := consoleFleet([]hub.TotemStatus{*ts}, exp, fleetFilter{}, L, c.Now()).Rows
	b.Row = rows[0]
	b.Devices = appendDevices(b.Devices, ts.Devices)
	b.Storage = fmt.Sprintf("%.0f%%", ts.Storage*100)
	if l := ts.Last; l != nil {
		b.Last = fmt.Sprintf("#%d %s %s/%s %s %s", l.Seq, label(l.Kind), label(l.Transport), label(l.Processing),
			label(strings.Join(l.Codes, ",")), when(l.At))
	}
	if c.Data != nil {
		b.Log, _, _ = c.Data.SendLog(cms.SendLogFilter{Totem: ts.Totem, Max: 20})
		for i := range b.Log {
			sanitizeTx(&b.Log[i])
		}
	}
	for _, e := range c.Events(ts.Totem) {
		b.Events = append(b.Events, eventRow{At: when(e.At), Level: label(e.Level), Code: label(e.Code), Message: label(e.Message)})
	}
	for _, a := range totemActions {
		b.Actions = append(b.Actions, actionView{action: a, Allowed: allowed(s.role, ts.Totem, a.Command)})
	}
	return b
}

// sanitizeTx makes a send log entry's totem-given strings safe to show.
func sanitizeTx(t *cms.Transmission) {
	t.Totem, t.OpID, t.Kind, t.Ref = label(t.Totem), label(t.OpID), label(t.Kind), label(t.Ref)
	for i := range t.Codes {
		t.Codes[i] = label(t.Codes[i])
	}
}

func (c *console) totemPage(w http.ResponseWriter, r *http.Request) {
	ts, ok := c.findTotem(r.PathValue("id"))
	if !ok {
		c.fail(w, http.StatusNotFound, "no such totem", nil)
		return
	}
	p := c.page(r, "fleet", nil)
	b := c.totemBody(r, ts, p.L)
	if r.URL.Query().Get("ask") == "sendlog" {
		// The totem's own send log, its quarantined entries included.
		rep, id, err := c.signAndSend(r.Context(), current(r), ts.Totem, "sendlog", map[string]string{"n": "50"})
		if err == nil && !rep.OK {
			err = errors.New(label(rep.Error))
		}
		var rows []protocol.SendLogRow
		if err == nil {
			err = json.Unmarshal(rep.Data, &rows)
		}
		for _, row := range rows {
			row.OpID, row.Kind, row.State = label(row.OpID), label(row.Kind), label(row.State)
			row.Transport, row.Processing = label(row.Transport), label(row.Processing)
			if strings.HasPrefix(row.State, "quarantine") {
				b.Quarantine = append(b.Quarantine, row)
			} else {
				b.TotemLog = append(b.TotemLog, row)
			}
		}
		if err != nil {
			b.Error = label(err.Error())
		}
		c.auditWeb(current(r).user, "totem_sendlog", ts.Totem+" command "+id)
	}
	p.Body = b
	c.render(w, "totem", p)
}

func (c *console) totemAction(w http.ResponseWriter, r *http.Request) {
	s := current(r)
	ts, ok := c.findTotem(r.PathValue("id"))
	if !ok {
		c.fail(w, http.StatusNotFound, "no such totem", nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.fail(w, http.StatusBadRequest, "bad form", nil)
		return
	}
	i := slices.IndexFunc(totemActions, func(a action) bool { return a.Name == r.PostForm.Get("action") })
	if i < 0 {
		c.fail(w, http.StatusBadRequest, "unknown action", nil)
		return
	}
	a := totemActions[i]
	if !allowed(s.role, ts.Totem, a.Command) {
		c.auditWeb(s.user, "action_refused", a.Command+" on "+ts.Totem+": role "+s.role)
		c.fail(w, http.StatusForbidden, "403 "+a.Command+": not allowed to the role "+s.role, nil)
		return
	}
	args := map[string]string{}
	for _, k := range a.Args {
		if v := strings.TrimSpace(r.PostForm.Get(k)); v != "" {
			if len(v) > protocol.MaxArg {
				c.fail(w, http.StatusBadRequest, k+": too long", nil)
				return
			}
			args[k] = v
		}
	}
	if a.Name == "print" {
		args["n"] = "5"
	}
	detail := a.Command + " on " + ts.Totem
	if id := args["id"]; id != "" {
		detail += " op " + label(id)
	}
	p := c.page(r, "fleet", nil)
	b := c.totemBody(r, ts, p.L)
	rep, id, err := c.signAndSend(r.Context(), s, ts.Totem, a.Command, args)
	switch {
	case err != nil:
		b.Error = label(err.Error())
	case !rep.OK:
		b.Error = label(rep.Error)
		if rep.Code != "" {
			b.Error += " (" + label(rep.Code) + ")"
		}
	default:
		b.Result = label(string(rep.Data))
		if b.Result == "" {
			b.Result = "ok"
		}
	}
	outcome := "ok"
	if b.Error != "" {
		outcome = "failed: " + b.Error
	}
	c.auditWeb(s.user, "totem_"+a.Name, detail+" command "+id+" signed as "+s.role+": "+outcome)
	p.Body = b
	c.render(w, "totem", p)
}

// dateParam reads a YYYY-MM-DD date (local time) of the query; to is
// inclusive on the page, so a day is added for the filters' exclusive To.
func dateParam(r *http.Request, k string, to bool) (time.Time, string) {
	v := r.URL.Query().Get(k)
	d, err := time.ParseInLocation(time.DateOnly, v, time.Local)
	if err != nil {
		return time.Time{}, ""
	}
	if to {
		return d.AddDate(0, 0, 1), v
	}
	return d, v
}

type sendLogBody struct {
	Totem, Outcome, From, To string
	Rows                     []cms.Transmission
	Next                     uint64
	NoData                   bool
}

var sendOutcomes = []string{"", cms.SendAccepted, cms.SendRejected, cms.SendRefused, cms.SendDuplicate}

func (c *console) sendLogPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	b := sendLogBody{Totem: q.Get("totem"), Outcome: q.Get("outcome")}
	if b.Totem != "" && !protocol.ValidTotemID(b.Totem) {
		b.Totem = ""
	}
	if !slices.Contains(sendOutcomes, b.Outcome) {
		b.Outcome = ""
	}
	f := cms.SendLogFilter{Totem: b.Totem, Outcome: b.Outcome, Max: 100}
	f.From, b.From = dateParam(r, "from", false)
	f.To, b.To = dateParam(r, "to", true)
	f.Before, _ = parseN(q.Get("before"))
	if c.Data == nil {
		b.NoData = true
	} else {
		var err error
		if b.Rows, b.Next, err = c.Data.SendLog(f); err != nil {
			c.fail(w, http.StatusInternalServerError, "send log not read", err)
			return
		}
		for i := range b.Rows {
			sanitizeTx(&b.Rows[i])
		}
	}
	c.render(w, "sendlog", c.page(r, "sendlog", b))
}

type reportBody struct {
	Totem, Kind, Operator, Outcome, From, To string
	ByDay, NoData                            bool
	Rows                                     []cms.ReportRow
	Chart                                    template.HTML
	CSV                                      template.URL // the same filters, as CSV
}

// reportFilter reads the Reportistica's filters: the same as totemctl
// report's.
func reportFilter(r *http.Request) (cms.ReportFilter, reportBody) {
	q := r.URL.Query()
	b := reportBody{Totem: q.Get("totem"), Kind: q.Get("kind"), Operator: q.Get("operator"), Outcome: q.Get("outcome"),
		ByDay: q.Get("by_day") != ""}
	if b.Totem != "" && !protocol.ValidTotemID(b.Totem) {
		b.Totem = ""
	}
	if len(b.Kind) > 32 {
		b.Kind = ""
	}
	if len(b.Operator) > 64 {
		b.Operator = ""
	}
	if b.Outcome != cms.ReportAccepted && b.Outcome != cms.ReportRejected {
		b.Outcome = ""
	}
	f := cms.ReportFilter{Totem: b.Totem, Kind: b.Kind, Operator: b.Operator, Outcome: b.Outcome, ByDay: b.ByDay}
	f.From, b.From = dateParam(r, "from", false)
	f.To, b.To = dateParam(r, "to", true)
	v := url.Values{}
	for k, s := range map[string]string{"totem": b.Totem, "kind": b.Kind, "operator": b.Operator, "outcome": b.Outcome, "from": b.From, "to": b.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if b.ByDay {
		v.Set("by_day", "1")
	}
	// Encoded from the checked filters: a URL of this site, nothing else.
	b.CSV = template.URL("/report.csv?" + v.Encode())
	return f, b
}

func (c *console) reportPage(w http.ResponseWriter, r *http.Request) {
	f, b := reportFilter(r)
	p := c.page(r, "report", nil)
	if c.Data == nil {
		b.NoData = true
	} else {
		var err error
		if b.Rows, err = c.Data.Report(f); err != nil {
			c.fail(w, http.StatusInternalServerError, "report failed", err)
			return
		}
		for i := range b.Rows {
			b.Rows[i].Totem, b.Rows[i].Kind, b.Rows[i].Operator = label(b.Rows[i].Totem), label(b.Rows[i].Kind), label(b.Rows[i].Operator)
		}
		f.ByDay = true
		daily, err := c.Data.Report(f)
		if err != nil {
			c.fail(w, http.StatusInternalServerError, "report failed", err)
			return
		}
		b.Chart = chartSVG(daily, p.L)
	}
	p.Body = b
	c.render(w, "report", p)
}

// reportCSV is the Reportistica as totemctl report -o csv writes it.
func (c *console) reportCSV(w http.ResponseWriter, r *http.Request) {
	if c.Data == nil {
		c.fail(w, http.StatusServiceUnavailable, "no report on this hub", nil)
		return
	}
	f, b := reportFilter(r)
	rows, err := c.Data.Report(f)
	if err != nil {
		c.fail(w, http.StatusInternalServerError, "report failed", err)
		return
	}
	c.auditWeb(current(r).user, "report_csv", string(b.CSV)) // the checked filters, not the raw query
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="reportistica.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"day", "totem", "operator", "kind", "accepted", "rejected", "codes"})
	for _, row := range rows {
		codes := make([]string, 0, len(row.Codes))
		for k, n := range row.Codes {
			codes = append(codes, k+"="+strconv.Itoa(n))
		}
		slices.Sort(codes)
		// A cell starting with = + - @ would be a formula in a
		// spreadsheet: such values are quoted with a leading '.
		cw.Write([]string{row.Day, csvSafe(row.Totem), csvSafe(row.Operator), csvSafe(row.Kind), strconv.Itoa(row.Accepted),
			strconv.Itoa(row.Rejected), strings.Join(codes, " ")})
	}
	cw.Flush()
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// chartSVG draws the accepted and rejected operations per day as stacked
// bars, inline SVG: no script, nothing fetched. Only numbers and dates
// (checked YYYY-MM-DD) reach the markup.
func chartSVG(rows []cms.ReportRow, L map[string]string) template.HTML {
	type day struct{ acc, rej int }
	days := map[string]*day{}
	for _, r := range rows {
		if _, err := time.Parse(time.DateOnly, r.Day); err != nil {
			continue
		}
		d := days[r.Day]
		if d == nil {
			d = &day{}
			days[r.Day] = d
		}
		d.acc += r.Accepted
		d.rej += r.Rejected
	}
	keys := make([]string, 0, len(days))
	for k := range days {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 60 {
		keys = keys[len(keys)-60:]
	}
	max := 1
	for _, k := range keys {
		if t := days[k].acc + days[k].rej; t > max {
			max = t
		}
	}
	const h, bw, gap, top = 160, 18, 6, 10
	width := len(keys)*(bw+gap) + 40
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" aria-label="%s">`,
		width, h+40, template.HTMLEscapeString(L["chart"]))
	fmt.Fprintf(&sb, `<text x="0" y="10" font-size="10">%d</text>`, max)
	for i, k := range keys {
		d := days[k]
		x := 30 + i*(bw+gap)
		ha := d.acc * h / max
		hr := d.rej * h / max
		fmt.Fprintf(&sb, `<rect class="acc" x="%d" y="%d" width="%d" height="%d" fill="#4a8"><title>%s %s: %d</title></rect>`,
			x, top+h-ha, bw, ha, k, template.HTMLEscapeString(L["accepted"]), d.acc)
		fmt.Fprintf(&sb, `<rect class="rej" x="%d" y="%d" width="%d" height="%d" fill="#c44"><title>%s %s: %d</title></rect>`,
			x, top+h-ha-hr, bw, hr, k, template.HTMLEscapeString(L["rejected"]), d.rej)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="9">%s</text>`, x, top+h+14, k[5:])
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // built above from numbers, checked dates and escaped texts
}

type ticketRow struct {
	ID, Reason, CF, OpID, Opened, Note, State string
	Level, Attempts                           int
}

// maskCF shows a codice fiscale as the helpdesk needs it to find the
// citizen on the phone, not whole: the first three and the last letter.
func maskCF(cf string) string {
	if len(cf) < 6 {
		return "***"
	}
	return cf[:3] + strings.Repeat("*", len(cf)-4) + cf[len(cf)-1:]
}

func (c *console) ticketsPage(w http.ResponseWriter, r *http.Request) {
	var rows []ticketRow
	noData := c.Data == nil
	if !noData {
		ts, err := c.Data.Tickets()
		if err != nil {
			c.fail(w, http.StatusInternalServerError, "tickets not read", err)
			return
		}
		L := c.page(r, "", nil).L
		for _, t := range ts {
			state := L["ticket_open"]
			if rec, err := c.Data.FSE(t.CF); err == nil {
				switch rec.State {
				case cms.FSECreated:
					state = L["ticket_solved"]
				case cms.FSEPending:
					state = L["ticket_retrying"]
				}
			}
			rows = append(rows, ticketRow{ID: label(t.ID), Reason: label(t.Reason), CF: maskCF(label(t.CF)), OpID: label(t.OpID),
				Opened: when(t.Opened), Note: label(t.Note), Level: t.Level, Attempts: t.Attempts, State: state})
		}
	}
	c.render(w, "tickets", c.page(r, "tickets", struct {
		Rows   []ticketRow
		NoData bool
	}{rows, noData}))
}

type credRow struct {
	User, Expires, Rotated string
	Pending, Locked        bool
	Failures               int
	LockedAt, From         string // the lock: when, and the source address
	Events                 []credEvent
}

// credEvent is one credential event's count since the hub started; Key
// its name in the catalogue.
type credEvent struct {
	Key string
	N   int64
}

type lockedAccount struct{ Name, Until string }

type accessBody struct {
	Creds      []credRow
	NoCreds    bool
	Locked     []lockedAccount // console accounts locked
	CanUnlock  bool            // broker users
	CanRelease bool            // console accounts
	CanEnroll  bool
	Message    string
	Totems     []string
	EnrollCode string
}

func (c *console) accessBody(r *http.Request) accessBody {
	s := current(r)
	b := accessBody{CanUnlock: allowed(s.role, cmdsig.HubTarget, "unlock") && c.Unlock != nil,
		CanRelease: allowed(s.role, cmdsig.HubTarget, "unlock"),
		CanEnroll:  allowed(s.role, cmdsig.HubTarget, "enroll") && c.Enroll != nil}
	if c.Credentials == nil {
		b.NoCreds = true
	} else if cs, err := c.Credentials(); err == nil {
		for _, u := range cs {
			cr := credRow{User: label(u.Username), Pending: u.Pending, Locked: u.Locked, Failures: u.Failures, Expires: "—", Rotated: when(u.Rotated)}
			if !u.Expires.IsZero() {
				cr.Expires = u.Expires.Local().Format(time.DateOnly)
			}
			if u.Locked {
				cr.LockedAt, cr.From = when(u.LockedAt), label(u.From)
			}
			// The broker's fixed set, those that happened.
			for _, e := range broker.CredentialEvents {
				if n := u.Events[e]; n > 0 {
					cr.Events = append(cr.Events, credEvent{"cev_" + e, n})
				}
			}
			b.Creds = append(b.Creds, cr)
		}
	}
	for name, until := range c.g.locked() {
		b.Locked = append(b.Locked, lockedAccount{Name: name, Until: when(until)})
	}
	slices.SortFunc(b.Locked, func(x, y lockedAccount) int { return strings.Compare(x.Name, y.Name) })
	for _, ts := range c.List(hub.FleetFilter{}) {
		b.Totems = append(b.Totems, ts.Totem)
	}
	return b
}

func (c *console) accessPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, "access", c.page(r, "access", c.accessBody(r)))
}

func (c *console) unlockAction(w http.ResponseWriter, r *http.Request) {
	s := current(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	r.ParseForm()
	name := r.PostForm.Get("name")
	if !allowed(s.role, cmdsig.HubTarget, "unlock") {
		c.auditWeb(s.user, "action_refused", "unlock "+label(name)+": role "+s.role)
		c.fail(w, http.StatusForbidden, "403 unlock: not allowed to the role "+s.role, nil)
		return
	}
	b := c.accessBody(r)
	switch {
	case ValidName(name) && r.PostForm.Get("kind") == "console":
		was := c.g.unlock(name)
		c.auditWeb(s.user, "console_unlock", fmt.Sprintf("%s (was locked: %v)", name, was))
		b.Message = "ok: " + name
	case protocol.ValidTotemID(name) && c.Unlock != nil:
		was, err := c.Unlock(name)
		if err != nil {
			c.fail(w, http.StatusInternalServerError, "unlock failed", err)
			return
		}
		c.auditWeb(s.user, "unlock", fmt.Sprintf("%s (was locked: %v)", name, was))
		b = c.accessBodyWith(r, "ok: "+name)
	default:
		c.fail(w, http.StatusBadRequest, "bad name", nil)
		return
	}
	c.render(w, "access", c.page(r, "access", b))
}

func (c *console) accessBodyWith(r *http.Request, msg string) accessBody {
	b := c.accessBody(r)
	b.Message = msg
	return b
}

func (c *console) enrollAction(w http.ResponseWriter, r *http.Request) {
	s := current(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	r.ParseForm()
	totem := r.PostForm.Get("totem")
	if !allowed(s.role, cmdsig.HubTarget, "enroll") || c.Enroll == nil {
		c.auditWeb(s.user, "action_refused", "enroll "+label(totem)+": role "+s.role)
		c.fail(w, http.StatusForbidden, "403 enroll: not allowed", nil)
		return
	}
	if !protocol.ValidTotemID(totem) {
		c.fail(w, http.StatusBadRequest, "bad totem id", nil)
		return
	}
	code, exp, err := c.Enroll(totem)
	if err != nil {
		c.fail(w, http.StatusInternalServerError, "enroll failed", err)
		return
	}
	// The code itself is not in the audit: it is a secret until used.
	c.auditWeb(s.user, "enroll", totem+" code issued, valid until "+exp.UTC().Format(time.RFC3339))
	b := c.accessBodyWith(r, "ok: "+totem)
	b.EnrollCode = code + " (" + when(exp) + ")"
	c.render(w, "access", c.page(r, "access", b))
}
