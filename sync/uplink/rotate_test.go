package uplink

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/synctest"
)

// A rotation killed at each of its steps — simulated in process: the
// rotation stops there and the uplink is stopped, as a kill -9 would
// leave the files and the hub — never leaves the totem unable to log in:
// a new uplink from what the credentials file holds connects. A rotation
// that runs through gives the totem a secret valid 90 days, the old one is
// refused after the login with the new one, and no secret is logged.
func TestRotationSurvivesACrashAtEveryStep(t *testing.T) {
	logs := new(synctest.Log)
	log := slog.New(slog.NewTextHandler(logs, nil))
	l := newLiveHub(t, log)
	reg, srv, store, first := l.Registry, l.srv, l.store, l.first
	if d := time.Until(first.Expires); d < 239*24*time.Hour || d > 240*24*time.Hour {
		t.Fatalf("first expiry in %v, want 240 days", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rot := rotator{t: t, ctx: ctx, url: srv.URL(), box: l.box, log: log, store: store}

	rot.crashAtEveryStep(func(_ *Uplink, step string, died <-chan struct{}) {
		select {
		case <-died:
		case <-ctx.Done():
			t.Fatalf("the rotation never reached %s", step)
		}
	}, func(u *Uplink, what string) {
		t.Helper()
		if !until(ctx, u.Connected) {
			t.Fatalf("%s: the totem cannot log in; broker %s", what, srv.Stats())
		}
	})

	before, _ := store.Load()
	u, _, stop := rot.start(true, "")
	if !until(ctx, func() bool {
		f, err := store.Load()
		if err == nil && f.Password != before.Password && u.Connected() && time.Until(f.Expires) > 89*24*time.Hour {
			if role, out, _ := reg.Check(totem, f.Password, ""); out != broker.Accepted || role != creds.RoleTotem {
				t.Fatalf("the new secret: %v", out)
			}
			return true
		}
		return false
	}) {
		t.Fatalf("no rotation; broker %s", srv.Stats())
	}
	// The login with the new secret ended the old one.
	if !until(ctx, func() bool {
		user, _, _ := reg.Get(totem)
		return user.Next == "" && !user.Rotated.IsZero()
	}) {
		t.Fatal("the new secret was never confirmed")
	}
	if _, out, _ := reg.Check(totem, before.Password, ""); out != broker.Rejected {
		t.Errorf("the old secret after the confirmation: %v", out)
	}
	stop()
	if l.h.Rotations() != 4 { // sent, replied, promoted, and the last
		t.Errorf("hub recorded %d rotations", l.h.Rotations())
	}
	text := logs.String()
	for _, p := range []string{first.Password, before.Password} {
		if strings.Contains(text, p) {
			t.Error("a secret is in the logs")
		}
	}
}
