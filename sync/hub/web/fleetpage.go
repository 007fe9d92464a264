package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// consoleRow is one totem on the console's fleet page. Every string a
// totem sent went through label (no control characters, valid UTF-8);
// html/template escapes the rest.
type consoleRow struct {
	Totem, Status, Since, LastSeen, Oldest, Version, Class string
	Paper, Reader, Expiry, Clock, Location                 string
	Queue                                                  int
	Alerts                                                 []string
}

type fleetBody struct {
	At                    string
	Total, Offline, Alert int
	Status, Q             string // the filters
	Query                 string // the same, encoded, for the live refresh
	Rows                  []consoleRow
}

// fleetFilter is the page's filters, from the query.
type fleetFilter struct {
	status string // "", offline, alert, never
	q      string // part of the totem id or version
}

func (f fleetFilter) match(ts *hub.TotemStatus) bool {
	switch f.status {
	case "offline":
		if ts.Status == protocol.Online {
			return false
		}
	case "alert":
		if len(ts.Alerts) == 0 {
			return false
		}
	case "never":
		if ts.Status != hub.NeverSeen {
			return false
		}
	}
	return f.q == "" || strings.Contains(strings.ToLower(ts.Totem), f.q) || strings.Contains(strings.ToLower(ts.Version), f.q) ||
		strings.Contains(strings.ToLower(ts.Location), f.q)
}

func filterOf(r *http.Request) fleetFilter {
	f := fleetFilter{status: r.URL.Query().Get("status"), q: strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))}
	switch f.status {
	case "offline", "alert", "never":
	default:
		f.status = ""
	}
	if len(f.q) > 64 {
		f.q = f.q[:64]
	}
	return f
}

// expiries returns the totems' credential expiry and lock, by totem.
func (c *console) expiries() map[string]broker.Credential {
	if c.Credentials == nil {
		return nil
	}
	cs, err := c.Credentials()
	if err != nil {
		c.log.Warn("console: credentials not read", "err", err)
		return nil
	}
	m := make(map[string]broker.Credential, len(cs))
	for _, u := range cs {
		if u.Role == creds.RoleTotem {
			m[u.Username] = u
		}
	}
	return m
}

// consoleFleet builds the fleet page's rows, sorted by what needs a
// person first (rank), the longest in that state first.
func consoleFleet(list []hub.TotemStatus, exp map[string]broker.Credential, f fleetFilter, L map[string]string, now time.Time) fleetBody {
	sel := list[:0]
	for i := range list {
		if f.match(&list[i]) {
			sel = append(sel, list[i])
		}
	}
	sortFleet(sel)
	b := fleetBody{At: now.Local().Format(timeLayout), Total: len(sel), Status: f.status, Q: f.q, Rows: make([]consoleRow, 0, len(sel)),
		Query: url.Values{"status": {f.status}, "q": {f.q}}.Encode()}
	for i := range sel {
		ts := &sel[i]
		r := consoleRow{Totem: label(ts.Totem), Status: L[ts.Status], Since: when(ts.Since), LastSeen: when(ts.LastSeen),
			Queue: ts.Queue, Oldest: when(ts.Oldest), Version: label(ts.Version), Location: label(ts.Location), Paper: "—", Reader: "—", Expiry: "—", Clock: "—"}
		if r.Status == "" {
			r.Status = label(ts.Status)
		}
		if ts.Status == protocol.Offline && ts.Reason != "" {
			if why := L["why_"+ts.Reason]; why != "" {
				r.Status += " (" + why + ")"
			}
		}
		if s, ok := ts.Devices["printer"]; ok {
			r.Paper = deviceText(s, L)
		}
		if s, ok := ts.Devices["reader"]; ok {
			r.Reader = deviceText(s, L)
		}
		if ts.ClockSynced != nil {
			r.Clock = map[bool]string{true: L["synced"], false: L["not_synced"]}[*ts.ClockSynced]
		}
		if u, ok := exp[ts.Totem]; ok && !u.Expires.IsZero() {
			r.Expiry = u.Expires.Local().Format(time.DateOnly)
		}
		for _, a := range ts.Alerts {
			r.Alerts = append(r.Alerts, alertText(a, L))
		}
		r.Class = rowClass(ts)
		if r.Class == "offline" {
			b.Offline++
		}
		if len(ts.Alerts) > 0 {
			b.Alert++
		}
		b.Rows = append(b.Rows, r)
	}
	return b
}

// deviceText is a device state in the page's language; a state the
// catalogue does not know is shown as the totem sent it, made inert.
func deviceText(s string, L map[string]string) string {
	if t := L["dev_"+s]; t != "" {
		return t
	}
	return label(s)
}

// alertText is one of the registry's alerts (offline, device:NAME,
// storage, quarantine, clock) in the page's language.
func alertText(a string, L map[string]string) string {
	if d, ok := strings.CutPrefix(a, "device:"); ok {
		return L["al_device"] + " " + label(d)
	}
	if t := L["al_"+a]; t != "" {
		return t
	}
	return label(a)
}

// sortFleet orders by rank, then the longest in that state, then id.
func sortFleet(list []hub.TotemStatus) {
	slices.SortStableFunc(list, func(a, b hub.TotemStatus) int {
		if ra, rb := rank(&a), rank(&b); ra != rb {
			return ra - rb
		}
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Totem, b.Totem)
	})
}

func (c *console) fleetBody(r *http.Request, L map[string]string) fleetBody {
	list := c.List(hub.FleetFilter{})
	exp := c.expiries()
	c.evaluateWith(list, exp)
	return consoleFleet(list, exp, filterOf(r), L, c.Now())
}

func (c *console) fleetPage(w http.ResponseWriter, r *http.Request) {
	p := c.page(r, "fleet", nil)
	p.Body = c.fleetBody(r, p.L)
	c.render(w, "fleet", p)
}

// fleetRows is the table's body alone, which htmx fetches every Refresh.
func (c *console) fleetRows(w http.ResponseWriter, r *http.Request) {
	p := c.page(r, "fleet", nil)
	p.Body = c.fleetBody(r, p.L)
	c.render(w, "fleet_rows", p)
}

// Alert thresholds, the same as deploy/prometheus/alerts.yml: ops without
// Prometheus get the same alerts.
const (
	offlineAlertAfter = 10 * time.Minute
	pendingAlertAfter = time.Hour
	expiryAlertBefore = 14 * 24 * time.Hour
	maxRecentAlerts   = 200
)

// alert is one condition of one totem that needs a person.
type alert struct {
	Totem, Key string // Key: the catalogue's a_… key
	Detail     string
	Since      time.Time
	Cleared    time.Time
}

// alertBook keeps the alerts active now and those cleared lately,
// computed from the registry each time a page reads it.
type alertBook struct {
	mu     sync.Mutex
	active map[[2]string]*alert // by totem and key
	recent []alert              // newest first, bounded
}

func newAlertBook() *alertBook { return &alertBook{active: map[[2]string]*alert{}} }

// conditions returns the alerts of ts now.
func conditions(ts *hub.TotemStatus, cred broker.Credential, hasCred bool, now time.Time) map[string]string {
	a := map[string]string{}
	if ts.Status == protocol.Offline && now.Sub(ts.Since) >= offlineAlertAfter {
		a["a_offline"] = ts.Reason
	}
	if ts.Status == protocol.Online {
		for d, s := range ts.Devices {
			switch {
			case d == "printer" && s == "paper_out":
				a["a_paper"] = ""
			case d == "reader" && s != "ok":
				a["a_reader"] = label(s)
			case s != "ok" && d != "printer" && d != "reader", d == "printer" && s != "ok" && s != "paper_out":
				a["a_device"] = label(d) + ": " + label(s)
			}
		}
	}
	if ts.Queue > 0 && !ts.Oldest.IsZero() && now.Sub(ts.Oldest) >= pendingAlertAfter {
		a["a_pending"] = ts.Oldest.UTC().Format(time.RFC3339)
	}
	if ts.StorageHigh {
		a["a_storage"] = ""
	}
	if ts.Quarantined > 0 {
		a["a_quarantine"] = ""
	}
	if ts.ClockSynced != nil && !*ts.ClockSynced {
		a["a_clock"] = ""
	}
	if hasCred && !cred.Expires.IsZero() && cred.Expires.Sub(now) < expiryAlertBefore {
		a["a_expiry"] = cred.Expires.UTC().Format(time.DateOnly)
	}
	if hasCred && cred.Locked {
		a["a_locked"] = ""
	}
	return a
}

// update computes the alerts of list: new ones start, gone ones move to
// the recent list.
func (b *alertBook) update(list []hub.TotemStatus, exp map[string]broker.Credential, now time.Time) (started, cleared []alert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := make(map[[2]string]bool, len(b.active))
	for i := range list {
		ts := &list[i]
		cred, ok := exp[ts.Totem]
		for k, d := range conditions(ts, cred, ok, now) {
			id := [2]string{ts.Totem, k}
			seen[id] = true
			if a := b.active[id]; a != nil {
				a.Detail = d
				continue
			}
			b.active[id] = &alert{Totem: label(ts.Totem), Key: k, Detail: d, Since: now}
			started = append(started, *b.active[id])
		}
	}
	for id, a := range b.active {
		if !seen[id] {
			a.Cleared = now
			b.recent = append([]alert{*a}, b.recent...)
			cleared = append(cleared, *a)
			delete(b.active, id)
		}
	}
	if len(b.recent) > maxRecentAlerts {
		b.recent = b.recent[:maxRecentAlerts]
	}
	return started, cleared
}

// evaluate computes the alerts now and logs each that starts or ends: ops
// without Prometheus find them in the journal too.
func (c *console) evaluate() { c.evaluateWith(c.List(hub.FleetFilter{}), c.expiries()) }

func (c *console) evaluateWith(list []hub.TotemStatus, exp map[string]broker.Credential) {
	started, cleared := c.alerts.update(list, exp, c.Now())
	for _, a := range started {
		c.log.Warn("alert", "totem", a.Totem, "alert", a.Key, "detail", label(a.Detail))
	}
	for _, a := range cleared {
		c.log.Info("alert cleared", "totem", a.Totem, "alert", a.Key, "since", a.Since)
	}
}

// watch evaluates the alerts every period until stop is closed, then
// closes done.
func (c *console) watch(stop <-chan struct{}, done chan<- struct{}, every time.Duration) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.evaluate()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (b *alertBook) snapshot() (active, recent []alert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.active {
		active = append(active, *a)
	}
	slices.SortFunc(active, func(x, y alert) int {
		if c := x.Since.Compare(y.Since); c != 0 {
			return c
		}
		return strings.Compare(x.Totem+x.Key, y.Totem+y.Key)
	})
	return active, slices.Clone(b.recent)
}

type alertsBody struct{ Active, Recent []alert }

func (c *console) alertsPage(w http.ResponseWriter, r *http.Request) {
	c.evaluate()
	a, rec := c.alerts.snapshot()
	c.render(w, "alerts", c.page(r, "alerts", alertsBody{Active: a, Recent: rec}))
}
