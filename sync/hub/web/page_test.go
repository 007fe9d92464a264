package web

import (
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// The page puts first what needs a person: offline (longest first), then
// online with an alert, then never seen, then the rest, by id.
func TestFleetPageOrder(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 12, 6, 10, m, 0, 0, time.UTC) }
	list := []hub.TotemStatus{
		{Totem: "a-ok", Status: protocol.Online, Since: at(1)},
		{Totem: "b-never", Status: hub.NeverSeen},
		{Totem: "c-alert", Status: protocol.Online, Since: at(2), Alerts: []string{"device:printer"}},
		{Totem: "d-off-late", Status: protocol.Offline, Since: at(30), Reason: hub.ReasonWill},
		{Totem: "e-off-early", Status: protocol.Offline, Since: at(5), Reason: hub.ReasonSilent},
	}
	d := fleetData(list, at(40))
	var got []string
	for _, r := range d.Rows {
		got = append(got, r.Totem)
	}
	if want := "e-off-early d-off-late c-alert b-never a-ok"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if d.Offline != 2 || d.Alert != 1 || d.Rows[0].Status != "non in linea (silenzioso)" {
		t.Fatalf("summary: %+v", d)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:9880": true, "[::1]:9880": true, "localhost:9880": true,
		"0.0.0.0:9880": false, ":9880": false, "10.0.0.1:9880": false, "[::]:9880": false, "nonsense": false} {
		if loopback(addr) != want {
			t.Errorf("loopback(%q) = %v", addr, !want)
		}
	}
}
