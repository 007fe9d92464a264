package uplink

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
)

// openBox opens an outbox in dir, closed when the test ends.
func openBox(t *testing.T, dir string) *outbox.Outbox {
	t.Helper()
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	return box
}

// registryBroker opens a fleet registry in dir with the totem provisioned
// (its file dir/t.json) and starts the embedded broker with o on the
// registry's users (o.Listen "" and no TLSListen is 127.0.0.1:0); both
// close when the test ends.
func registryBroker(t *testing.T, dir string, o broker.Options) (*broker.Registry, creds.File, *broker.Server) {
	t.Helper()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	f, err := reg.Provision(totem, creds.RoleTotem, filepath.Join(dir, "t.json"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen == "" && o.TLSListen == "" {
		o.Listen = "127.0.0.1:0"
	}
	o.Auth = broker.NewUsers(reg)
	srv, err := broker.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return reg, f, srv
}

// until polls cond every 5 ms; false if ctx ends first.
func until(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// goRun runs u until the returned stop, which waits for it.
func goRun(ctx context.Context, u *Uplink) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	return func() { cancel(); <-done }
}

// rotator starts the totem's uplink from its credentials file, as totemd
// does at each start, on the broker at url.
type rotator struct {
	t     *testing.T
	ctx   context.Context
	url   string
	box   *outbox.Outbox
	log   *slog.Logger
	store *creds.Store
}

// rotateSteps are the steps of a rotation, in order.
var rotateSteps = []string{"generated", "pending", "sent", "replied", "promoted"}

// start runs an uplink from the file; rotate makes the rotation due at
// once, and abort, if set, stops it at that step (died is closed then).
func (r rotator) start(rotate bool, abort string) (u *Uplink, died chan struct{}, stop func()) {
	f, err := r.store.Load()
	if err != nil {
		r.t.Fatal(err)
	}
	died = make(chan struct{})
	o := Options{Totem: totem, URL: r.url, Username: f.Username, Password: f.Password, Outbox: r.box, Logger: r.log,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Store: r.store, RotateAt: f.RotateAt}
	if rotate {
		o.RotateAt = time.Now().Add(-time.Second)
	}
	if abort != "" {
		o.rotateStep = func(step string) error {
			if step == abort {
				close(died)
				return errRotateAborted
			}
			return nil
		}
	}
	u = New(o)
	return u, died, goRun(r.ctx, u)
}

// crashAtEveryStep kills a rotation at each of its steps (stops its
// uplink once died is closed, as a kill -9 would leave the files and the
// hub) and starts the totem again from what its file holds: reached waits
// for the step's death, connected for the new uplink's login, and the
// pending file is gone after each restart.
func (r rotator) crashAtEveryStep(reached func(u *Uplink, step string, died <-chan struct{}), connected func(u *Uplink, what string)) {
	r.t.Helper()
	for _, step := range rotateSteps {
		u, died, stop := r.start(true, step)
		reached(u, step, died)
		stop() // killed
		u, _, stop = r.start(false, "")
		connected(u, "after a death at "+step)
		stop()
		if _, err := os.Stat(r.store.PendingPath()); !os.IsNotExist(err) {
			r.t.Errorf("after a death at %s: the pending file was not dropped at the next start (%v)", step, err)
		}
	}
}

// technician is a technician's key "tech-1" and a verifier for the totem
// that trusts it.
func technician(t *testing.T) (cmdsig.PrivateKey, *cmdsig.Verifier) {
	t.Helper()
	return synctest.Technician(t, "tech-1", totem)
}

// awaitRunning polls cond every 5 ms while Run, whose error errc gives,
// keeps going: Run returning fails the test, and so does ctx ending first
// (with timeout).
func awaitRunning(t *testing.T, ctx context.Context, errc <-chan error, cond func() bool, timeout string) {
	t.Helper()
	for !cond() {
		select {
		case err := <-errc:
			t.Fatalf("Run returned %v", err)
		case <-ctx.Done():
			t.Fatal(timeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
