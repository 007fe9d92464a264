package uplink

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/synctest"
)

// A rotation killed at each of its steps — simulated in process: the
// rotation stops there and the uplink is stopped, as a kill -9 would
// leave the files and the hub — never leaves the totem unable to log in:
// a new uplink from what the credentials file holds connects. A rotation
// that runs through gives the totem a secret valid 90 days, the old one is
// refused after the login with the new one, and no secret is logged.
func TestRotationSurvivesACrashAtEveryStep(t *testing.T) {
	dir := t.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	store := &creds.Store{Path: filepath.Join(dir, "creds", totem+".json")}
	first, err := reg.Provision(totem, creds.RoleTotem, store.Path)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(first.Expires); d < 239*24*time.Hour || d > 240*24*time.Hour {
		t.Fatalf("first expiry in %v, want 240 days", d)
	}
	me, _ := creds.Generate("hub-rot", creds.RoleHub)
	users := broker.NewUsers(reg)
	if err := users.Add(me); err != nil {
		t.Fatal(err)
	}
	logs := new(synctest.Log)
	log := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	store0, err := refcms.Open(filepath.Join(dir, "cms.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store0.Close()
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: me.Username, Username: me.Username, Password: me.Password,
		Accounts: reg, Logger: log, Backend: store0})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hctx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan struct{})
	go func() { h.Run(hctx); close(hubDone) }()
	defer func() { stopHub(); <-hubDone }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the subscriptions follow the connection
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()

	// start runs an uplink from the file; rotate makes the rotation due at
	// once, and abort, if set, stops it at that step.
	start := func(rotate bool, abort string) (*Uplink, chan struct{}, func()) {
		f, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		died := make(chan struct{})
		o := Options{Totem: totem, URL: srv.URL(), Username: f.Username, Password: f.Password, Outbox: box, Logger: log,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Store: store, RotateAt: f.RotateAt}
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
		u := New(o)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { u.Run(rctx); close(done) }()
		return u, died, func() { stop(); <-done }
	}
	waitConnected := func(u *Uplink, what string) {
		t.Helper()
		for !u.Connected() {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: the totem cannot log in; broker %s", what, srv.Stats())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}

	for _, step := range []string{"generated", "pending", "sent", "replied", "promoted"} {
		_, died, stop := start(true, step)
		select {
		case <-died:
		case <-ctx.Done():
			t.Fatalf("the rotation never reached %s", step)
		}
		stop() // killed
		u, _, stop := start(false, "")
		waitConnected(u, "after a death at "+step)
		stop()
		if _, err := os.Stat(store.PendingPath()); !os.IsNotExist(err) {
			t.Errorf("after a death at %s: the pending file was not dropped at the next start (%v)", step, err)
		}
	}

	before, _ := store.Load()
	u, _, stop := start(true, "")
	for {
		f, err := store.Load()
		if err == nil && f.Password != before.Password && u.Connected() && time.Until(f.Expires) > 89*24*time.Hour {
			if role, out, _ := reg.Check(totem, f.Password, ""); out != broker.Accepted || role != creds.RoleTotem {
				t.Fatalf("the new secret: %v", out)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no rotation; broker %s", srv.Stats())
		case <-time.After(5 * time.Millisecond):
		}
	}
	// The login with the new secret ended the old one.
	for {
		user, _, _ := reg.Get(totem)
		if user.Next == "" && !user.Rotated.IsZero() {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the new secret was never confirmed")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, out, _ := reg.Check(totem, before.Password, ""); out != broker.Rejected {
		t.Errorf("the old secret after the confirmation: %v", out)
	}
	stop()
	if h.Rotations() != 4 { // sent, replied, promoted, and the last
		t.Errorf("hub recorded %d rotations", h.Rotations())
	}
	l := logs.String()
	for _, p := range []string{first.Password, before.Password} {
		if strings.Contains(l, p) {
			t.Error("a secret is in the logs")
		}
	}
}
