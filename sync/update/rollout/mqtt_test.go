package rollout_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/update"
	"github.com/aslcns/totem/sync/update/agent"
	"github.com/aslcns/totem/sync/update/rollout"
	"github.com/aslcns/totem/sync/uplink"
)

// fakeInstaller swaps a version string; health passes for versions in good.
type fakeInstaller struct {
	mu        sync.Mutex
	running   string
	previous  string
	installed []byte
}

func (f *fakeInstaller) Running() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running, nil
}
func (f *fakeInstaller) Install(_ context.Context, path string, m *update.Manifest) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installed, f.previous, f.running = b, f.running, m.Version
	return nil
}
func (f *fakeInstaller) Rollback(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = f.previous
	return nil
}
func (f *fakeInstaller) Commit(context.Context) error { return nil }
func (f *fakeInstaller) version() string              { f.mu.Lock(); defer f.mu.Unlock(); return f.running }

type health struct{ good string }

func (h health) Healthy(_ context.Context, v string) (bool, string) {
	return v == h.good, "uplink never connected"
}

type alwaysQuiet struct{}

func (alwaysQuiet) Hold() (func(), bool) { return func() {}, true }

type fleet struct {
	ro      *rollout.Rollout
	clock   *haltest.Clock
	key     cmdsig.PrivateKey
	install map[string]*fakeInstaller
	dir     string
}

// newFleet starts a broker, the hub's rollout server and one uplink with
// an update agent per totem; healthy is the version whose health check
// passes.
func newFleet(t *testing.T, totems []string, healthy string) *fleet {
	t.Helper()
	return newFleetWith(t, totems, healthy, fleetOptions{})
}

// fleetOptions change what newFleetWith starts.
type fleetOptions struct {
	auth   func(broker.Authenticator) broker.Authenticator // wraps the broker's (nil: as is)
	broker func(*broker.Server)                            // called before the hub and the totems start
}

// newFleetWith is newFleet with o.
func newFleetWith(t *testing.T, totems []string, healthy string, o fleetOptions) *fleet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	users := broker.NewUsers(nil)
	add := func(name, role string) creds.File {
		c, err := creds.Generate(name, role)
		if err != nil {
			t.Fatal(err)
		}
		if err := users.Add(c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	hub := add("hub-test", creds.RoleHub)
	var a broker.Authenticator = users
	if o.auth != nil {
		a = o.auth(users)
	}
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if o.broker != nil {
		o.broker(srv)
	}

	f := &fleet{clock: haltest.NewClock(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)), install: map[string]*fakeInstaller{}, dir: t.TempDir()}
	if f.key, err = cmdsig.Generate("ops1", cmdsig.Ops); err != nil {
		t.Fatal(err)
	}
	send := rollout.NewMQTTSender()
	if f.ro, err = rollout.Open(filepath.Join(f.dir, "hub"), send, f.clock.Now, time.Hour); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ro.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		rollout.Serve(ctx, f.ro, send, rollout.ServeOptions{URL: srv.URL(), ClientID: "hub-test-updates",
			Username: hub.Username, Password: hub.Password, Tick: 5 * time.Millisecond})
	}()

	for _, id := range totems {
		c := add(id, creds.RoleTotem)
		box, err := outbox.Open(filepath.Join(f.dir, id+".db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { box.Close() })
		in := &fakeInstaller{running: "1.0.0"}
		f.install[id] = in
		var link *agent.Link
		var ready = make(chan struct{})
		up := uplink.New(uplink.Options{Totem: id, URL: srv.URL(), Username: c.Username, Password: c.Password, Outbox: box,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
			OnUpdate: func(b []byte) { <-ready; link.Receive(b) }})
		link = agent.NewLink(up, nil, 2*time.Second)
		close(ready)
		ag := agent.New(agent.Options{Dir: filepath.Join(f.dir, id+"-update"), Trusted: []cmdsig.PublicKey{f.key.Public()},
			Arch: "arm64", Source: link, Installer: in, Health: health{healthy}, Quiet: alwaysQuiet{},
			Report: link.Report, HealthWindow: 50 * time.Millisecond, Poll: 5 * time.Millisecond})
		wg.Add(2)
		go func() { defer wg.Done(); up.Run(ctx) }()
		go func() { defer wg.Done(); agent.Serve(ctx, ag, link, 20*time.Millisecond, ag.Apply) }()
	}
	return f
}

func (f *fleet) bundle(t *testing.T, version string) ([]byte, []byte) {
	t.Helper()
	p := make([]byte, 5*update.MinChunk+123)
	rand.Read(p)
	return synctest.SignedBundle(t, f.key, version, "arm64", p, update.MinChunk), p
}

// wait advances the hub's clock by step until the job leaves running,
// only while no offered totem is still under way: a totem gets the real
// time it needs (a loaded machine, -race) without the hub's minute
// passing under it, so what the job does next never depends on how fast
// this machine is. Bounded by a minute of real time (a failure bound:
// a run under load takes a few seconds).
func (f *fleet) wait(t *testing.T, job string, step time.Duration) *rollout.Status {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		st, err := f.ro.Status(job)
		if err != nil {
			t.Fatal(err)
		}
		if st.Job.State != rollout.JobRunning {
			return st
		}
		busy := false
		for _, tt := range st.Totems {
			busy = busy || (!tt.Offered.IsZero() && !update.Final(tt.State))
		}
		if !busy {
			f.clock.Advance(step)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, _ := f.ro.Status(job)
	t.Fatalf("job still running: %+v", st.Totems)
	return nil
}

// Over a real broker, through the ACL: three totems download in chunks,
// install, pass their health check and commit.
func TestJobOverMQTTCommits(t *testing.T) {
	f := newFleet(t, []string{"a", "b", "c"}, "2.0.0")
	manifest, payload := f.bundle(t, "2.0.0")
	if _, err := f.ro.Create("job1", manifest, payload, []string{"a", "b", "c"}, 60, 0); err != nil {
		t.Fatal(err)
	}
	st := f.wait(t, "job1", 0)
	if st.Job.State != rollout.JobDone || st.Counts[update.StateCommitted] != 3 {
		t.Fatalf("job %s, counts %v, totems %+v", st.Job.State, st.Counts, st.Totems)
	}
	for id, in := range f.install {
		if in.version() != "2.0.0" || !bytes.Equal(in.installed, payload) {
			t.Fatalf("%s runs %s", id, in.version())
		}
	}
}

// Three totems whose new version never passes its health check, a rate
// of one a minute and a 50% threshold: two roll back, the job stops, the
// third is never offered it and still runs 1.0.0.
func TestJobOverMQTTAborts(t *testing.T) {
	f := newFleet(t, []string{"a", "b", "c"}, "none")
	manifest, payload := f.bundle(t, "2.0.0")
	if _, err := f.ro.Create("job1", manifest, payload, []string{"a", "b", "c"}, 1, 50); err != nil {
		t.Fatal(err)
	}
	st := f.wait(t, "job1", 2*time.Second)
	if st.Job.State != rollout.JobAborted {
		t.Fatalf("job %s", st.Job.State)
	}
	var rolled, never []string
	for id, tt := range st.Totems {
		switch {
		case tt.State == update.StateRolledBack:
			rolled = append(rolled, id)
		case tt.Offered.IsZero() && tt.Reason == rollout.ReasonAborted:
			never = append(never, id)
		}
		if v := f.install[id].version(); v != "1.0.0" {
			t.Errorf("%s runs %s after the rollback", id, v)
		}
	}
	slices.Sort(rolled)
	if len(rolled) != 2 || len(never) != 1 {
		t.Fatalf("rolled back %v, never offered %v: %+v", rolled, never, st.Totems)
	}
}

// gated holds the hub's authentication until open is closed: the hub's
// connection comes up late, as on a loaded machine or after a broker's
// restart.
type gated struct {
	broker.Authenticator
	open <-chan struct{}
}

func (g gated) Authenticate(u, p string) (string, bool) {
	if u == "hub-test" {
		<-g.open
	}
	return g.Authenticator.Authenticate(u, p)
}

// The hub's first tick offers the job before the hub is connected (the
// offer fails), and the totem's hello on its connection reaches the
// broker before the hub subscribed (nobody hears it): once subscribed,
// the hub sends the unanswered offer again, without waiting ResendAfter
// (this test's clock never gets there).
func TestOfferMadeBeforeTheHubConnected(t *testing.T) {
	open := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(open) }) }
	hello := make(chan struct{})
	var helloOnce sync.Once
	f := newFleetWith(t, []string{"a"}, "2.0.0", fleetOptions{
		auth: func(a broker.Authenticator) broker.Authenticator { return gated{a, open} },
		broker: func(srv *broker.Server) { // before the totem can say it
			if err := srv.Subscribe(protocol.Topic("a", protocol.LeafUpdateReq), func(string, []byte) {
				helloOnce.Do(func() { close(hello) })
			}); err != nil {
				t.Fatal(err)
			}
		}})
	t.Cleanup(release) // before the fleet stops (cleanups run last first)
	manifest, payload := f.bundle(t, "2.0.0")
	if _, err := f.ro.Create("job1", manifest, payload, []string{"a"}, 60, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second) // a failure bound
	select {
	case <-hello:
	case <-deadline:
		t.Fatal("the totem never said hello")
	}
	for {
		st, err := f.ro.Status("job1")
		if err != nil {
			t.Fatal(err)
		}
		if !st.Totems["a"].Offered.IsZero() {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the job was never offered")
		case <-time.After(5 * time.Millisecond):
		}
	}
	release()
	st := f.wait(t, "job1", 0)
	if st.Job.State != rollout.JobDone || st.Counts[update.StateCommitted] != 1 || f.install["a"].version() != "2.0.0" {
		t.Fatalf("job %s, totems %+v", st.Job.State, st.Totems)
	}
}

// A payload corrupted at the hub after the job was created: every totem
// refuses the chunk against the signed manifest and installs nothing.
func TestCorruptedChunkOverMQTT(t *testing.T) {
	f := newFleet(t, []string{"a"}, "2.0.0")
	manifest, payload := f.bundle(t, "2.0.0")
	if _, err := f.ro.Create("job1", manifest, payload, []string{"a"}, 60, 100); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.dir, "hub", "job1.bin")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[update.MinChunk+7] ^= 0x55 // chunk 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	st := f.wait(t, "job1", 0)
	a := st.Totems["a"]
	if a.State != update.StateFailed || !bytes.Contains([]byte(a.Reason), []byte("digest")) {
		t.Fatalf("a: %+v", a)
	}
	if v := f.install["a"].version(); v != "1.0.0" {
		t.Fatalf("a runs %s", v)
	}
}
