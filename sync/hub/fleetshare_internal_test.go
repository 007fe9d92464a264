package hub

import (
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// memShared is a SharedFleetStore in memory that merges as
// sync/pgshare's table does: the presence half from the write heard from
// last, the answer half from the write of the latest operation.
type memShared struct {
	mu sync.Mutex
	m  map[string]TotemStatus
}

func (s *memShared) Load() ([]TotemStatus, error) {
	all, _, err := s.Changed(time.Time{})
	return all, err
}
func (s *memShared) Close() error { return nil }

func (s *memShared) Save(entries []TotemStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		old, ok := s.m[e.Totem]
		if !ok {
			s.m[e.Totem] = e
			continue
		}
		n := old
		if old.LastSeen.IsZero() || !e.LastSeen.Before(old.LastSeen) {
			n = e
			n.Last, n.ClockSynced = old.Last, old.ClockSynced
		}
		if e.Last != nil && (old.Last == nil || e.Last.Seq >= old.Last.Seq) {
			n.Last, n.ClockSynced = e.Last, e.ClockSynced
		}
		s.m[e.Totem] = n
	}
	return nil
}

func (s *memShared) Changed(time.Time) ([]TotemStatus, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TotemStatus
	for _, e := range s.m {
		out = append(out, e)
	}
	return out, time.Now(), nil
}

// Two registries on one shared store: B lists what A heard and the
// answer A gave; when B heard the totem later than A but A answered a
// later operation, both end with B's presence and A's answer; and B,
// which never heard the totem itself, does not call it silent while A
// does hear it.
func TestFleetsShareAStore(t *testing.T) {
	c := newFakeClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	st := &memShared{m: map[string]TotemStatus{}}
	open := func() *Fleet {
		f, err := NewFleet(st, FleetOptions{TelemetryInterval: 10 * time.Second, Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open(), open()
	tele := func(f *Fleet, queue int) {
		m, _ := protocol.Marshal(protocol.Telemetry{V: 1, Totem: "t-1", At: c.now(), Queue: protocol.Queue{Depth: queue}})
		f.observe(msg(protocol.Topic("t-1", protocol.LeafTelemetry), m))
	}
	answer := func(f *Fleet, seq uint64) {
		f.answered(&protocol.Op{Totem: "t-1", Seq: seq, Kind: "consent"},
			&protocol.Result{Transport: protocol.Transport{Status: protocol.TransportReceived, At: c.now()}})
	}
	exchange := func(fs ...*Fleet) {
		for _, f := range fs {
			if err := f.flush(); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range fs {
			if err := f.refresh(); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.observe(stateMsg("t-1", protocol.Online, "b1", 1, false))
	tele(a, 5)
	answer(a, 1)
	exchange(a, b)
	if g := status(t, b, "t-1"); g.Status != protocol.Online || g.Queue != 5 || g.Last == nil || g.Last.Seq != 1 {
		t.Fatalf("B lists %+v", g)
	}

	c.add(time.Second)
	answer(a, 2) // A applies seq 2; B hears a later telemetry
	c.add(time.Second)
	tele(b, 2)
	exchange(a, b)
	exchange(a, b)
	for name, f := range map[string]*Fleet{"A": a, "B": b} {
		if g := status(t, f, "t-1"); g.Queue != 2 || g.Last == nil || g.Last.Seq != 2 {
			t.Errorf("%s lists queue %d, last %+v; want B's queue 2 and A's answer to seq 2", name, g.Queue, g.Last)
		}
	}

	// A answers seq 3 and, before it writes that, reads B's later
	// presence: the answer it has not written yet is not lost.
	answer(a, 3)
	c.add(time.Second)
	tele(b, 1)
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if err := a.refresh(); err != nil {
		t.Fatal(err)
	}
	exchange(a, b)
	for name, f := range map[string]*Fleet{"A": a, "B": b} {
		if g := status(t, f, "t-1"); g.Queue != 1 || g.Last == nil || g.Last.Seq != 3 {
			t.Errorf("%s lists queue %d, last %+v; want B's queue 1 and A's answer to seq 3", name, g.Queue, g.Last)
		}
	}

	// A hears it every 5 s for 40 s (the silence window is 30 s); B hears
	// nothing itself but reads A's entries.
	for range 8 {
		c.add(5 * time.Second)
		tele(a, 1)
		exchange(a, b)
		b.sweep()
	}
	if g := status(t, b, "t-1"); g.Status != protocol.Online {
		t.Fatalf("B called a totem A hears %s (%s)", g.Status, g.Reason)
	}
	// Silence: both call it offline.
	c.add(31 * time.Second)
	a.sweep()
	b.sweep()
	exchange(a, b)
	for name, f := range map[string]*Fleet{"A": a, "B": b} {
		if g := status(t, f, "t-1"); g.Status != protocol.Offline || g.Reason != ReasonSilent {
			t.Errorf("%s: %s (%s) after the silence", name, g.Status, g.Reason)
		}
	}
}
