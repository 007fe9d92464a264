package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// fleetOf returns n totems in every state the page shows: online, offline
// (each reason), never seen, with devices, a backlog and alerts.
func fleetOf(n int, now time.Time) []hub.TotemStatus {
	synced, unsynced := true, false
	list := make([]hub.TotemStatus, n)
	for i := range list {
		ts := hub.TotemStatus{Totem: fmt.Sprintf("totem-%05d", i), Version: "1.4.2", LastSeen: now.Add(-time.Duration(i) * time.Second),
			Since: now.Add(-time.Duration(i) * time.Minute), Queue: i % 7, Devices: map[string]string{"printer": "ok", "reader": "ok"},
			ClockSynced: &synced}
		switch i % 10 {
		case 0:
			ts.Status, ts.Reason = protocol.Offline, hub.ReasonSilent
		case 1:
			ts.Status, ts.Reason = protocol.Offline, hub.ReasonWill
		case 2:
			ts.Status = hub.NeverSeen
			ts.Devices, ts.ClockSynced = nil, nil
		case 3:
			ts.Status = protocol.Online
			ts.Devices["printer"] = "paper_out"
			ts.ClockSynced = &unsynced
			ts.Oldest = now.Add(-2 * time.Hour)
		default:
			ts.Status = protocol.Online
		}
		list[i] = ts
	}
	return list
}

// benchConsole is a console over n totems with a logged-in ops session.
func benchConsole(n int) (*console, *http.Request) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	list := fleetOf(n, now)
	exp := make([]broker.Credential, 0, n)
	for i := range list {
		exp = append(exp, broker.Credential{Username: list[i].Totem, Role: "totem", Expires: now.Add(time.Duration(i) * time.Hour)})
	}
	c := newConsole(Options{Console: &Console{Now: func() time.Time { return now },
		List:        func(hub.FleetFilter) []hub.TotemStatus { return append([]hub.TotemStatus(nil), list...) },
		Credentials: func() ([]broker.Credential, error) { return exp, nil }}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, &session{user: "anna", role: "ops", lang: "it"}))
	return c, r
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// The fleet page of 1 000 totems, server time: registry read, alerts,
// sort, template. The bound is 300 ms.
func BenchmarkFleetPage1000(b *testing.B) {
	c, r := benchConsole(1000)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		c.fleetPage(w, r)
	}
}

// The same page, small, in the suite: every totem has its row, in the
// order of what needs a person.
func TestFleetPageSizes(t *testing.T) {
	for _, n := range []int{0, 1, 20} {
		c, r := benchConsole(n)
		w := httptest.NewRecorder()
		c.fleetPage(w, r)
		body := w.Body.String()
		if w.Code != 200 || strings.Count(body, "data-totem=") != n {
			t.Fatalf("%d totems: %d, %d rows", n, w.Code, strings.Count(body, "data-totem="))
		}
		if n == 20 && strings.Index(body, `data-totem="totem-00000"`) > strings.Index(body, `data-totem="totem-00004"`) {
			t.Fatal("an offline totem after an online one")
		}
	}
}

// One password check: what a login costs the hub (argon2id, 19 MiB).
func BenchmarkCheckPassword(b *testing.B) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !checkPassword(h, "correct horse battery") {
			b.Fatal("no match")
		}
	}
}
