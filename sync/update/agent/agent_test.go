package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/update"
)

const chunk = update.MinChunk

type bundle struct {
	key      cmdsig.PrivateKey
	payload  []byte
	manifest []byte
}

func newBundle(t *testing.T, version string, size int) bundle {
	t.Helper()
	k, err := cmdsig.Generate("ops1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	return signBundle(t, k, version, size)
}

func signBundle(t *testing.T, k cmdsig.PrivateKey, version string, size int) bundle {
	t.Helper()
	p := make([]byte, size)
	rand.Read(p)
	return bundle{k, p, synctest.SignedBundle(t, k, version, "arm64", p, chunk)}
}

// source serves a payload; corrupt[i] is how many times chunk i comes
// corrupted, failAt makes it fail (as a dropped link) at that chunk once.
type source struct {
	mu      sync.Mutex
	payload []byte
	corrupt map[int]int
	failAt  int
	fetched []int
}

func (s *source) Chunk(_ context.Context, _ string, i int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i == s.failAt {
		s.failAt = -1
		return nil, errors.New("link down")
	}
	s.fetched = append(s.fetched, i)
	off := i * chunk
	c := bytes.Clone(s.payload[off:min(off+chunk, len(s.payload))])
	if s.corrupt[i] > 0 {
		s.corrupt[i]--
		c[0] ^= 0xff
	}
	return c, nil
}

// installer records what it installed; running is the version a
// restarted service would run.
type installer struct {
	mu        sync.Mutex
	running   string
	previous  string
	installed []byte // the payload Install was given
	calls     []string
	quiet     *quiet // Install asserts the totem is held
	t         *testing.T
}

func (in *installer) Running() (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.running, nil
}

func (in *installer) Install(_ context.Context, path string, m *update.Manifest) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.quiet != nil && !in.quiet.isHeld() {
		in.t.Error("Install ran without holding the totem quiet")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	in.installed = b
	in.previous, in.running = in.running, m.Version
	in.calls = append(in.calls, "install "+m.Version)
	return nil
}

func (in *installer) Commit(context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls = append(in.calls, "commit")
	return nil
}

func (in *installer) Rollback(context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.running = in.previous
	in.calls = append(in.calls, "rollback "+in.previous)
	return nil
}

// health passes once ok says so; each look advances the fake clock.
type health struct {
	clock *haltest.Clock
	ok    func(version string) bool
	asked int
}

func (h *health) Healthy(_ context.Context, version string) (bool, string) {
	h.asked++
	h.clock.Advance(10 * time.Second)
	if h.ok(version) {
		return true, ""
	}
	return false, "uplink not connected"
}

// quiet is the firmware's idle signal: busy while a session runs; a
// session cannot start while held.
type quiet struct {
	mu      sync.Mutex
	session bool
	held    bool
	asked   int
}

func (q *quiet) Hold() (func(), bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked++
	if q.session || q.held {
		return nil, false
	}
	q.held = true
	return func() { q.mu.Lock(); q.held = false; q.mu.Unlock() }, true
}

func (q *quiet) startSession() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held {
		return false
	}
	q.session = true
	return true
}

func (q *quiet) endSession()  { q.mu.Lock(); q.session = false; q.mu.Unlock() }
func (q *quiet) isHeld() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.held }

type rig struct {
	b      bundle
	src    *source
	in     *installer
	health *health
	quiet  *quiet
	clock  *haltest.Clock
	dir    string

	mu      sync.Mutex
	reports []update.Status
}

func newRig(t *testing.T, b bundle) *rig {
	r := &rig{b: b, src: &source{payload: b.payload, corrupt: map[int]int{}, failAt: -1}, quiet: &quiet{},
		clock: haltest.NewClock(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)), dir: t.TempDir()}
	r.in = &installer{running: "1.0.0", quiet: r.quiet, t: t}
	r.health = &health{clock: r.clock, ok: func(string) bool { return true }}
	return r
}

func (r *rig) agent() *Agent {
	return New(Options{Dir: r.dir, Trusted: []cmdsig.PublicKey{r.b.key.Public()}, Arch: "arm64",
		Source: r.src, Installer: r.in, Health: r.health, Quiet: r.quiet, Poll: time.Millisecond,
		HealthWindow: time.Minute, Now: r.clock.Now,
		Report: func(s update.Status) { r.mu.Lock(); r.reports = append(r.reports, s); r.mu.Unlock() }})
}

func (r *rig) last() update.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports[len(r.reports)-1]
}

func run(t *testing.T, a *Agent, job string, manifest []byte) {
	t.Helper()
	if err := a.Offer(job, manifest); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestGoodUpdateCommits(t *testing.T) {
	r := newRig(t, newBundle(t, "2.0.0", 3*chunk+100))
	run(t, r.agent(), "job1", r.b.manifest)
	if !bytes.Equal(r.in.installed, r.b.payload) {
		t.Fatal("installed payload differs from the bundle's")
	}
	if r.in.running != "2.0.0" || !slices.Equal(r.in.calls, []string{"install 2.0.0", "commit"}) {
		t.Fatalf("running %s, calls %v", r.in.running, r.in.calls)
	}
	if s := r.last(); s.State != update.StateCommitted || s.Version != "2.0.0" {
		t.Fatalf("last report %+v", s)
	}
	if _, err := os.Stat(r.agent().payloadPath()); !os.IsNotExist(err) {
		t.Fatalf("payload left behind: %v", err)
	}
	// The hub repeating its offer changes nothing.
	if err := r.agent().Offer("job1", r.b.manifest); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.agent().Status(); s.State != update.StateCommitted {
		t.Fatalf("status after a repeated offer: %+v", s)
	}
}

func TestUnhealthyUpdateRollsBack(t *testing.T) {
	r := newRig(t, newBundle(t, "2.0.0", chunk))
	r.health.ok = func(v string) bool { return v != "2.0.0" } // never connects
	run(t, r.agent(), "job1", r.b.manifest)
	if r.in.running != "1.0.0" {
		t.Fatalf("running %s after a failed health check", r.in.running)
	}
	if want := []string{"install 2.0.0", "rollback 1.0.0"}; !slices.Equal(r.in.calls, want) {
		t.Fatalf("calls %v, want %v", r.in.calls, want)
	}
	s := r.last()
	if s.State != update.StateRolledBack || s.Reason == "" {
		t.Fatalf("last report %+v", s)
	}
	// It waited out the window: 10 s a look, a 1-minute window.
	if r.health.asked < 6 {
		t.Fatalf("rolled back after %d looks", r.health.asked)
	}
}

// The supervisor dying during probation (as when totemd's restart takes
// it down, or the board reboots) does not commit the new version: the
// next Apply resumes the probation and rolls back at its deadline.
func TestProbationSurvivesRestart(t *testing.T) {
	r := newRig(t, newBundle(t, "2.0.0", chunk))
	r.health.ok = func(string) bool { return false }
	a := r.agent()
	if err := a.Offer("job1", r.b.manifest); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.health.ok = func(string) bool { cancel(); return false } // dies at its first look
	if err := a.Apply(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply: %v", err)
	}
	if s, _ := r.agent().Status(); s.State != update.StateInstalled {
		t.Fatalf("status after the crash %+v", s)
	}
	r.health.ok = func(string) bool { return false }
	if err := r.agent().Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"install 2.0.0", "rollback 1.0.0"}; !slices.Equal(r.in.calls, want) {
		t.Fatalf("calls %v, want %v", r.in.calls, want)
	}
}

func TestDownloadResumes(t *testing.T) {
	r := newRig(t, newBundle(t, "2.0.0", 4*chunk))
	r.src.failAt = 2
	a := r.agent()
	if err := a.Offer("job1", r.b.manifest); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); err == nil {
		t.Fatal("Download returned nil through a dropped link")
	}
	if s, _ := a.Status(); s.State != update.StateDownloading || s.Chunk != 2 {
		t.Fatalf("status after the drop %+v", s)
	}
	// A new process resumes at chunk 2.
	run(t, r.agent(), "job1", r.b.manifest)
	if want := []int{0, 1, 2, 3}; !slices.Equal(r.src.fetched, want) {
		t.Fatalf("fetched %v, want %v", r.src.fetched, want)
	}
	if !bytes.Equal(r.in.installed, r.b.payload) {
		t.Fatal("resumed payload differs")
	}
}

func TestCorruptedChunk(t *testing.T) {
	// Once: refused, asked again, the update goes on.
	r := newRig(t, newBundle(t, "2.0.0", 2*chunk))
	r.src.corrupt[1] = 1
	run(t, r.agent(), "job1", r.b.manifest)
	if !bytes.Equal(r.in.installed, r.b.payload) || r.last().State != update.StateCommitted {
		t.Fatalf("after one corrupted chunk: %+v", r.last())
	}

	// Every time: the update fails and nothing is installed.
	r = newRig(t, newBundle(t, "2.0.0", 2*chunk))
	r.src.corrupt[1] = 100
	a := r.agent()
	if err := a.Offer("job1", r.b.manifest); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); err == nil {
		t.Fatal("Download accepted a corrupted chunk")
	}
	if err := a.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(r.in.calls) != 0 {
		t.Fatalf("installer called: %v", r.in.calls)
	}
	if s := r.last(); s.State != update.StateFailed {
		t.Fatalf("last report %+v", s)
	}
}

func TestBadSignatureRefused(t *testing.T) {
	good := newBundle(t, "2.0.0", chunk)
	forger, err := cmdsig.Generate("ops1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	forged := signBundle(t, forger, "2.0.0", chunk)
	r := newRig(t, good)
	a := r.agent()
	if err := a.Offer("job1", forged.manifest); !errors.Is(err, update.ErrSignature) {
		t.Fatalf("forged bundle: %v", err)
	}
	if s := r.last(); s.State != update.StateFailed {
		t.Fatalf("report %+v", s)
	}
	if err := a.Download(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(r.src.fetched) != 0 || len(r.in.calls) != 0 {
		t.Fatalf("forged bundle fetched %v, installed %v", r.src.fetched, r.in.calls)
	}
	// A state file altered on disk is verified again before use.
	if err := a.Offer("job2", good.manifest); err != nil {
		t.Fatal(err)
	}
	st, err := a.load()
	if err != nil {
		t.Fatal(err)
	}
	st.Manifest = forged.manifest
	if err := a.save(st); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); !errors.Is(err, update.ErrSignature) {
		t.Fatalf("Download with a forged state file: %v", err)
	}
}

// No update interrupts a citizen: while a session runs, Apply waits;
// once it holds the totem, a session cannot start until the update is
// done.
func TestNoUpdateDuringSession(t *testing.T) {
	r := newRig(t, newBundle(t, "2.0.0", chunk))
	a := r.agent()
	if err := a.Offer("job1", r.b.manifest); err != nil {
		t.Fatal(err)
	}
	if err := a.Download(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.quiet.startSession() {
		t.Fatal("session refused before any update")
	}
	done := make(chan error, 1)
	go func() { done <- a.Apply(context.Background()) }()
	// Apply keeps asking; the session goes on untouched meanwhile.
	// (Bounded: an Apply that did not wait returns on done.)
	for asked := 0; asked < 5; {
		select {
		case err := <-done:
			t.Fatalf("Apply returned during a session: %v", err)
		case <-time.After(time.Millisecond):
		}
		r.quiet.mu.Lock()
		asked = r.quiet.asked
		r.quiet.mu.Unlock()
	}
	r.in.mu.Lock()
	calls := len(r.in.calls)
	r.in.mu.Unlock()
	if calls != 0 {
		t.Fatal("installed during a session")
	}
	r.quiet.endSession()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.in.running != "2.0.0" {
		t.Fatalf("running %s", r.in.running)
	}
	if r.quiet.isHeld() {
		t.Fatal("hold not released after the update")
	}
}

func TestOfferWhileBusy(t *testing.T) {
	r := newRig(t, newBundle(t, "2.0.0", 2*chunk))
	a := r.agent()
	if err := a.Offer("job1", r.b.manifest); err != nil {
		t.Fatal(err)
	}
	other := signBundle(t, r.b.key, "3.0.0", chunk)
	if err := a.Offer("job2", other.manifest); !errors.Is(err, ErrBusy) {
		t.Fatalf("second offer: %v", err)
	}
}
