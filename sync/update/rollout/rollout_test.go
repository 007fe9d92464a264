package rollout

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/update"
)

type offer struct {
	totem, job string
	at         time.Time
}

type sender struct {
	mu        sync.Mutex
	clock     *haltest.Clock
	offers    []offer
	cancelled []string
}

func (s *sender) Offer(totem, job string, manifest []byte) error {
	if _, err := update.Decode(manifest); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offers = append(s.offers, offer{totem, job, s.clock.Now()})
	return nil
}

func (s *sender) Cancel(totem, job string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = append(s.cancelled, totem)
	return nil
}

func bundle(t *testing.T) ([]byte, []byte) {
	t.Helper()
	k, err := cmdsig.Generate("ops1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3*update.MinChunk+9)
	rand.Read(p)
	return synctest.SignedBundle(t, k, "2.0.0", "arm64", p, update.MinChunk), p
}

func open(t *testing.T, dir string, c *haltest.Clock, s *sender) *Rollout {
	t.Helper()
	r, err := Open(dir, s, c.Now, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func totems(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("t%02d", i))
	}
	return out
}

func newRig(t *testing.T) (*Rollout, *haltest.Clock, *sender, string) {
	c := haltest.NewClock(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))
	s := &sender{clock: c}
	dir := t.TempDir()
	return open(t, dir, c, s), c, s, dir
}

// A job never exceeds its rate: in any minute, at most Rate offers, however
// fast the totems commit and however often the hub ticks.
func TestRateNeverExceeded(t *testing.T) {
	r, c, s, _ := newRig(t)
	manifest, payload := bundle(t)
	const rate = 4
	if _, err := r.Create("job1", manifest, payload, totems(30), rate, 10); err != nil {
		t.Fatal(err)
	}
	done := false
	for tick := 0; tick < 2000 && !done; tick++ { // bounded: 30 totems at 4/min need ~8 min of 7-s ticks
		if err := r.Tick(); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		offered := slices.Clone(s.offers)
		s.mu.Unlock()
		for _, o := range offered { // every offered totem commits at once
			if err := r.Report(o.totem, update.Status{Job: "job1", Version: "2.0.0", State: update.StateCommitted}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := r.Status("job1")
		if err != nil {
			t.Fatal(err)
		}
		done = st.Job.State == JobDone
		c.Advance(7 * time.Second)
	}
	if !done {
		t.Fatal("job not done")
	}
	if len(s.offers) != 30 {
		t.Fatalf("%d offers for 30 totems", len(s.offers))
	}
	for i, o := range s.offers {
		n := 0
		for _, p := range s.offers[i:] {
			if p.at.Sub(o.at) < time.Minute {
				n++
			}
		}
		if n > rate {
			t.Fatalf("%d offers in the minute from %v, rate %d/min", n, o.at, rate)
		}
	}
}

// A job of 3 totems stops itself past its failure threshold: the third
// totem is never offered the bundle.
func TestAbortThreshold(t *testing.T) {
	r, c, s, dir := newRig(t)
	manifest, payload := bundle(t)
	if _, err := r.Create("job1", manifest, payload, []string{"a", "b", "c"}, 1, 50); err != nil {
		t.Fatal(err)
	}
	for tick := 0; tick < 20; tick++ {
		if err := r.Tick(); err != nil {
			t.Fatal(err)
		}
		for _, o := range s.offers {
			r.Report(o.totem, update.Status{Job: "job1", State: update.StateRolledBack, Reason: "health check not passed"})
		}
		c.Advance(20 * time.Second)
	}
	st, err := r.Status("job1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Job.State != JobAborted {
		t.Fatalf("job %s (%s)", st.Job.State, st.Job.Reason)
	}
	var offered []string
	for _, o := range s.offers {
		offered = append(offered, o.totem)
	}
	if !slices.Equal(offered, []string{"a", "b"}) {
		t.Fatalf("offered %v", offered)
	}
	if c := st.Totems["c"]; c.State != update.StateFailed || c.Reason != ReasonAborted {
		t.Fatalf("c: %+v", c)
	}
	// Persisted: a restarted hub sees the same.
	r.Close()
	r2 := open(t, dir, c, s)
	st2, err := r2.Status("job1")
	if err != nil {
		t.Fatal(err)
	}
	if st2.Job.State != JobAborted || st2.Counts[update.StateRolledBack] != 2 || st2.Counts[update.StateFailed] != 1 {
		t.Fatalf("after reopen: %s %v", st2.Job.State, st2.Counts)
	}
}

func TestChunksOnlyToOfferedTotems(t *testing.T) {
	r, _, _, _ := newRig(t)
	manifest, payload := bundle(t)
	if _, err := r.Create("job1", manifest, payload, []string{"a", "b"}, 1, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Chunk("a", "job1", 0); !errors.Is(err, ErrNotTarget) {
		t.Fatalf("chunk before the offer: %v", err)
	}
	if err := r.Tick(); err != nil { // rate 1: a only
		t.Fatal(err)
	}
	m, _ := update.Decode(manifest)
	for i := range m.Chunks {
		b, err := r.Chunk("a", "job1", i)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CheckChunk(i, b); err != nil || !bytes.Equal(b, m.Chunk(payload, i)) {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	for _, c := range []struct {
		totem, job string
		i          int
	}{{"b", "job1", 0}, {"x", "job1", 0}, {"a", "nojob", 0}, {"a", "job1", len(m.Chunks)}, {"a", "job1", -1}} {
		if _, err := r.Chunk(c.totem, c.job, c.i); err == nil {
			t.Errorf("chunk %v served", c)
		}
	}
	if err := r.Report("b", update.Status{Job: "job1", State: update.StateCommitted}); !errors.Is(err, ErrNotTarget) {
		t.Fatalf("report from a totem not offered: %v", err)
	}
	if err := r.Report("a", update.Status{Job: "job1", State: update.StateCommitted}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Chunk("a", "job1", 0); !errors.Is(err, ErrNotTarget) {
		t.Fatalf("chunk after commit: %v", err)
	}
	// A final state stays.
	if err := r.Report("a", update.Status{Job: "job1", State: update.StateFailed}); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.Status("job1"); st.Totems["a"].State != update.StateCommitted {
		t.Fatalf("a: %+v", st.Totems["a"])
	}
}

func TestCancel(t *testing.T) {
	r, _, s, _ := newRig(t)
	manifest, payload := bundle(t)
	if _, err := r.Create("job1", manifest, payload, []string{"a", "b", "c"}, 2, 100); err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(); err != nil {
		t.Fatal(err)
	}
	if err := r.Report("a", update.Status{Job: "job1", State: update.StateDownloading, Chunk: 1, Chunks: 4}); err != nil {
		t.Fatal(err)
	}
	if err := r.Report("b", update.Status{Job: "job1", State: update.StateCommitted}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Cancel("job1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.cancelled, []string{"a"}) {
		t.Fatalf("cancelled %v", s.cancelled)
	}
	if err := r.Tick(); err != nil {
		t.Fatal(err)
	}
	if len(s.offers) != 2 {
		t.Fatalf("offers after cancel: %v", s.offers)
	}
	st, _ := r.Status("job1")
	if st.Job.State != JobCancelled || st.Totems["c"].Reason != ReasonCancelled || st.Totems["b"].State != update.StateCommitted {
		t.Fatalf("%+v", st)
	}
	if _, err := r.Cancel("job1"); err == nil {
		t.Fatal("cancelled twice")
	}
}

func TestCreateRefuses(t *testing.T) {
	r, _, _, _ := newRig(t)
	manifest, payload := bundle(t)
	bad := bytes.Clone(payload)
	bad[0] ^= 1
	for name, c := range map[string]struct {
		id      string
		payload []byte
		targets []string
		rate    int
		pct     int
	}{
		"corrupted payload": {"j", bad, []string{"a"}, 1, 0},
		"no targets":        {"j", payload, nil, 1, 0},
		"bad target":        {"j", payload, []string{"a/b"}, 1, 0},
		"rate 0":            {"j", payload, []string{"a"}, 0, 0},
		"pct 101":           {"j", payload, []string{"a"}, 1, 101},
		"bad id":            {"../j", payload, []string{"a"}, 1, 0},
	} {
		if _, err := r.Create(c.id, manifest, c.payload, c.targets, c.rate, c.pct); err == nil {
			t.Errorf("%s: created", name)
		}
	}
	if _, err := r.Create("j", manifest, payload, []string{"a"}, 1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create("j", manifest, payload, []string{"b"}, 1, 0); err == nil {
		t.Fatal("job id reused")
	}
}

// An offered totem that never reports fails at the timeout and counts
// toward the threshold.
func TestTimeout(t *testing.T) {
	r, c, _, _ := newRig(t)
	manifest, payload := bundle(t)
	if _, err := r.Create("job1", manifest, payload, []string{"a", "b"}, 1, 0); err != nil {
		t.Fatal(err)
	}
	r.Tick()
	c.Advance(31 * time.Minute)
	r.Tick()
	st, _ := r.Status("job1")
	if st.Totems["a"].Reason != ReasonTimeout || st.Job.State != JobAborted {
		t.Fatalf("%+v", st)
	}
}

// An offer nobody answered is sent again after ResendAfter, without
// counting against the rate; an answered one is not.
func TestResendUnanswered(t *testing.T) {
	r, c, s, _ := newRig(t)
	manifest, payload := bundle(t)
	if _, err := r.Create("job1", manifest, payload, []string{"a", "b", "c"}, 2, 100); err != nil {
		t.Fatal(err)
	}
	r.Tick() // a, b offered
	if err := r.Report("b", update.Status{Job: "job1", State: update.StateDownloading}); err != nil {
		t.Fatal(err)
	}
	c.Advance(30 * time.Second)
	r.Tick()
	if len(s.offers) != 2 {
		t.Fatalf("offers before ResendAfter: %v", s.offers)
	}
	c.Advance(31 * time.Second)
	r.Tick() // a again (unanswered), c new (the minute passed)
	var got []string
	for _, o := range s.offers[2:] {
		got = append(got, o.totem)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("offers after ResendAfter: %v", got)
	}
}
