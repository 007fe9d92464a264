package web

import (
	"embed"
	"html/template"
	"net"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

//go:embed templates/fleet.html templates/console/*.html
var templates embed.FS

// html/template escapes every value by its context: a totem id, version
// or device state with markup or escape sequences is shown as text.
var fleetPage = template.Must(template.ParseFS(templates, "templates/fleet.html"))

type pageRow struct {
	Totem, Status, Since, LastSeen, Oldest, Version, Class string
	Queue                                                  int
	Devices, Alerts                                        []string
}

type pageData struct {
	At                    string
	Total, Offline, Alert int
	Rows                  []pageRow
}

// loopback reports whether addr (host:port) is on the loopback only: the
// fleet page has no login yet (ops accounts are to come), so it is served
// only where nobody but this machine reaches it.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// rank orders the page by what needs a person: offline first, then
// totems with an alert, then those never seen, then the rest.
func rank(ts *hub.TotemStatus) int {
	switch {
	case ts.Status == protocol.Offline:
		return 0
	case ts.Status == protocol.Online && len(ts.Alerts) > 0:
		return 1
	case ts.Status == hub.NeverSeen:
		return 2
	}
	return 3
}

// rowClass is the class of a totem's row by its rank: "offline",
// "alert", "never", or "" for a totem online and quiet.
func rowClass(ts *hub.TotemStatus) string {
	switch rank(ts) {
	case 0:
		return "offline"
	case 1:
		return "alert"
	case 2:
		return "never"
	}
	return ""
}

// appendDevices appends a totem's devices to dst as "device: state",
// sorted by device, both through label.
func appendDevices(dst []string, devs map[string]string) []string {
	names := make([]string, 0, len(devs))
	for n := range devs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		dst = append(dst, label(n)+": "+label(devs[n]))
	}
	return dst
}

const timeLayout = "2006-01-02 15:04:05"

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format(timeLayout)
}

var statusText = map[string]string{protocol.Online: "in linea", protocol.Offline: "non in linea", hub.NeverSeen: "mai visto"}

var reasonText = map[string]string{hub.ReasonWill: "connessione persa", hub.ReasonGoodbye: "spento",
	hub.ReasonSilent: "silenzioso"}

func fleetData(list []hub.TotemStatus, now time.Time) pageData {
	sort.SliceStable(list, func(i, j int) bool {
		ri, rj := rank(&list[i]), rank(&list[j])
		if ri != rj {
			return ri < rj
		}
		if !list[i].Since.Equal(list[j].Since) {
			return list[i].Since.Before(list[j].Since) // the longest in that state first
		}
		return list[i].Totem < list[j].Totem
	})
	d := pageData{At: now.Local().Format(timeLayout), Total: len(list)}
	for i := range list {
		ts := &list[i]
		r := pageRow{Totem: ts.Totem, Status: statusText[ts.Status], Since: when(ts.Since), LastSeen: when(ts.LastSeen),
			Queue: ts.Queue, Oldest: when(ts.Oldest), Version: label(ts.Version)}
		// html/template escapes markup; label also takes out the control
		// characters (an escape sequence would reach a terminal copying
		// the page) and invalid UTF-8 a totem may have sent.
		for _, a := range ts.Alerts {
			r.Alerts = append(r.Alerts, label(a))
		}
		if r.Status == "" {
			r.Status = ts.Status
		}
		if why := reasonText[ts.Reason]; why != "" && ts.Status == protocol.Offline {
			r.Status += " (" + why + ")"
		}
		r.Class = rowClass(ts)
		if r.Class == "offline" {
			d.Offline++
		}
		if len(ts.Alerts) > 0 {
			d.Alert++
		}
		r.Devices = appendDevices(r.Devices, ts.Devices)
		d.Rows = append(d.Rows, r)
	}
	return d
}

// pageHandler serves the fleet page, or on a listener off the loopback
// refuses it, saying why.
func pageHandler(o Options) http.HandlerFunc {
	allowed := loopback(o.Listen)
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowed {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("La pagina della flotta non ha ancora un accesso con account ops: è servita solo quando " +
				"[http] listen è sul loopback. /metrics, /healthz e /readyz restano disponibili.\n"))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err := fleetPage.Execute(w, fleetData(o.Fleet.List(hub.FleetFilter{}), time.Now())); err != nil {
			o.Logger.Warn("fleet page", "err", err)
		}
	}
}
