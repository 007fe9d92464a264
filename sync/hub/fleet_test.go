package hub

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time       { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration)  { c.ns.Add(int64(d)) }
func newFakeClock(t time.Time) *fakeClock { c := &fakeClock{}; c.ns.Store(t.UnixNano()); return c }
func msg(topic string, b []byte) *paho.Publish {
	return &paho.Publish{Topic: topic, QoS: 1, Payload: b}
}

func stateMsg(totem, status, boot string, session uint64, goodbye bool) *paho.Publish {
	st := protocol.State{V: 1, Totem: totem, Status: status, Boot: boot, Session: session}
	if goodbye || status == protocol.Online {
		st.Since = time.Unix(1, 0)
	}
	b, _ := protocol.Marshal(st)
	return msg(protocol.Topic(totem, protocol.LeafState), b)
}

func openTestFleet(t *testing.T, path string, c *fakeClock) *Fleet {
	t.Helper()
	f, err := OpenFleet(path, FleetOptions{TelemetryInterval: 10 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func status(t *testing.T, f *Fleet, totem string) TotemStatus {
	t.Helper()
	for _, ts := range f.List(FleetFilter{}) {
		if ts.Totem == totem {
			return ts
		}
	}
	t.Fatalf("%s not in the registry", totem)
	return TotemStatus{}
}

// A Last Will from an older connection (lower session in the same boot,
// or another boot) never overrides a newer online; the current
// connection's will and an older totem's will (no session) do.
func TestFleetSessionGuardsPresence(t *testing.T) {
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	f := openTestFleet(t, filepath.Join(t.TempDir(), "presence.db"), c)
	defer f.Close()
	steps := []struct {
		m      *paho.Publish
		status string
		reason string
	}{
		{stateMsg("t1", protocol.Online, "b1", 100, false), protocol.Online, ""},
		{stateMsg("t1", protocol.Online, "b1", 200, false), protocol.Online, ""},  // reconnected
		{stateMsg("t1", protocol.Offline, "b1", 100, false), protocol.Online, ""}, // the old connection's will, late
		{stateMsg("t1", protocol.Offline, "b0", 900, false), protocol.Online, ""}, // a will from the previous boot
		{stateMsg("t1", protocol.Offline, "b1", 200, false), protocol.Offline, ReasonWill},
		{stateMsg("t1", protocol.Online, "b2", 5, false), protocol.Online, ""}, // rebooted: lower number, new boot
		{stateMsg("t1", protocol.Offline, "b2", 5, true), protocol.Offline, ReasonGoodbye},
		{stateMsg("old", protocol.Online, "", 0, false), protocol.Online, ""},
		{stateMsg("old", protocol.Offline, "", 0, false), protocol.Offline, ReasonWill},
	}
	for i, s := range steps {
		if f.observe(s.m) {
			t.Fatalf("step %d: a state message must go on to the worker (policy)", i)
		}
		totem, _, _ := protocol.ParseTopic(s.m.Topic)
		got := status(t, f, totem)
		if got.Status != s.status || got.Reason != s.reason {
			t.Fatalf("step %d: %s %q, want %s %q", i, got.Status, got.Reason, s.status, s.reason)
		}
	}
}

// Offline is timer-driven: a totem heard from for none of 3 telemetry
// intervals is offline ("silent") since it was last seen, and online again
// at its next message.
func TestFleetSilentTotemGoesOffline(t *testing.T) {
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	f := openTestFleet(t, filepath.Join(t.TempDir(), "presence.db"), c)
	defer f.Close()
	f.observe(stateMsg("t1", protocol.Online, "b1", 1, false))
	seen := c.now().UTC()
	c.add(29 * time.Second)
	f.sweep()
	if s := status(t, f, "t1"); s.Status != protocol.Online {
		t.Fatalf("offline after 29 s of 30: %+v", s)
	}
	c.add(time.Second)
	f.sweep()
	s := status(t, f, "t1")
	if s.Status != protocol.Offline || s.Reason != ReasonSilent || !s.Since.Equal(seen) {
		t.Fatalf("after 30 s of silence: %s %q since %v, want offline silent since %v", s.Status, s.Reason, s.Since, seen)
	}
	tb, _ := protocol.Marshal(protocol.Telemetry{V: 1, Totem: "t1", At: c.now(), Queue: protocol.Queue{Depth: 7}})
	if !f.observe(msg(protocol.Topic("t1", protocol.LeafTelemetry), tb)) {
		t.Fatal("telemetry not consumed by the registry")
	}
	if s := status(t, f, "t1"); s.Status != protocol.Online || s.Queue != 7 {
		t.Fatalf("after telemetry: %+v", s)
	}
}

// The registry survives a restart: every totem, offline ones included;
// a totem provisioned and never heard of is listed as such. Filters.
func TestFleetPersistsAndFilters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.db")
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	f := openTestFleet(t, path, c)
	f.Provisioned("quiet", "up", "down")
	f.observe(stateMsg("up", protocol.Online, "b", 1, false))
	f.observe(stateMsg("down", protocol.Online, "b", 1, false))
	f.observe(stateMsg("down", protocol.Offline, "b", 1, false))
	tb, _ := protocol.Marshal(protocol.Telemetry{V: 1, Totem: "up", At: c.now(), Queue: protocol.Queue{Depth: 40},
		Devices: map[string]string{"printer": "paper_out", "reader": "ok"}})
	f.observe(msg(protocol.Topic("up", protocol.LeafTelemetry), tb))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f = openTestFleet(t, path, c)
	defer f.Close()
	want := map[string]string{"quiet": NeverSeen, "up": protocol.Online, "down": protocol.Offline}
	all := f.List(FleetFilter{})
	if len(all) != 3 {
		t.Fatalf("after restart: %+v", all)
	}
	for _, ts := range all {
		if ts.Status != want[ts.Totem] {
			t.Fatalf("after restart %s is %s, want %s", ts.Totem, ts.Status, want[ts.Totem])
		}
	}
	names := func(l []TotemStatus) (s []string) {
		for _, ts := range l {
			s = append(s, ts.Totem)
		}
		return s
	}
	for _, tc := range []struct {
		f    FleetFilter
		want []string
	}{
		{FleetFilter{Offline: true}, []string{"down", "quiet"}},
		{FleetFilter{Alert: true}, []string{"down", "quiet", "up"}}, // up: the printer
		{FleetFilter{Backlog: 40}, []string{"up"}},
		{FleetFilter{Backlog: 41}, nil},
	} {
		if got := names(f.List(tc.f)); len(got) != len(tc.want) || (len(got) > 0 && !equal(got, tc.want)) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
	if a := status(t, f, "up").Alerts; len(a) != 1 || a[0] != "device:printer" {
		t.Fatalf("alerts of up: %v", a)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A totem's events are kept for the console, the latest maxEvents, newest
// first; an event naming another totem, and a retained one, are not.
func TestFleetKeepsRecentEvents(t *testing.T) {
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	f := openTestFleet(t, filepath.Join(t.TempDir(), "presence.db"), c)
	defer f.Close()
	ev := func(totem, code string) *paho.Publish {
		b, _ := protocol.Marshal(protocol.Event{V: 1, Totem: totem, At: c.now(), Level: protocol.LevelWarning, Code: code})
		return msg(protocol.Topic("t1", protocol.LeafEvent), b)
	}
	for i := range maxEvents + 3 {
		if !f.observe(ev("t1", "e"+string(rune('a'+i)))) {
			t.Fatal("event not consumed by the registry")
		}
	}
	f.observe(ev("t2", "foreign"))
	r := ev("t1", "retained")
	r.Retain = true
	f.observe(r)
	got := f.Events("t1")
	if len(got) != maxEvents || got[0].Code != "e"+string(rune('a'+maxEvents+2)) || got[maxEvents-1].Code != "ed" {
		t.Fatalf("events %d: first %q last %q", len(got), got[0].Code, got[len(got)-1].Code)
	}
	if s := status(t, f, "t1"); s.Status != protocol.Online {
		t.Fatalf("an event is a sign of life: %+v", s)
	}
	if f.Events("t-unknown") != nil {
		t.Fatal("events of an unknown totem")
	}
}

// The registry, not the totem, says which totems stand at counters
// enabled to reissue cards: from the hub's configuration, listed with
// each entry, and nothing a totem sends changes it.
func TestFleetReissueCounters(t *testing.T) {
	f, err := OpenFleet(filepath.Join(t.TempDir(), "fleet.db"), FleetOptions{Counters: []string{"counter-01"}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Provisioned("counter-01", "lobby-01")
	f.observe(stateMsg("lobby-01", protocol.Online, "b1", 1, false))
	for _, tc := range []struct {
		totem string
		want  bool
	}{{"counter-01", true}, {"lobby-01", false}, {"unknown-01", false}} {
		if got := f.ReissueCounter(tc.totem); got != tc.want {
			t.Errorf("ReissueCounter(%s) = %v", tc.totem, got)
		}
	}
	if !status(t, f, "counter-01").ReissueCounter || status(t, f, "lobby-01").ReissueCounter {
		t.Error("listed entries say otherwise")
	}
	var none *Fleet
	if none.ReissueCounter("counter-01") {
		t.Error("a hub without a registry knows a counter")
	}
}

// A totem's ASL, from its presence message, is kept across a restart
// and selects the targets of a fleet job (targets=asl=NAME), without
// case; a totem never heard from is in no ASL.
func TestFleetInASL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.db")
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	f := openTestFleet(t, path, c)
	f.Provisioned("quiet")
	for _, x := range []struct{ totem, asl string }{{"r1", "ASL Roma 1"}, {"r2", "ASL Roma 1"}, {"l1", "ASL Toscana nord ovest"}, {"old", ""}} {
		b, _ := protocol.Marshal(protocol.State{V: 1, Totem: x.totem, Status: protocol.Online, Boot: "b", Session: 1, ASL: x.asl})
		f.observe(msg(protocol.Topic(x.totem, protocol.LeafState), b))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f = openTestFleet(t, path, c)
	defer f.Close()
	if got := f.InASL(" asl roma 1"); !equal(got, []string{"r1", "r2"}) {
		t.Fatalf("InASL(roma) = %v", got)
	}
	if got := f.InASL("ASL Toscana nord ovest"); !equal(got, []string{"l1"}) {
		t.Fatalf("InASL(toscana) = %v", got)
	}
	if got := f.InASL(""); len(got) != 0 {
		t.Fatalf("InASL(\"\") = %v", got)
	}
	if s := status(t, f, "r1"); s.ASL != "ASL Roma 1" {
		t.Fatalf("r1 after restart: %+v", s)
	}
}
