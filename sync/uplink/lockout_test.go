package uplink

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/synctest"
)

// A totem with a wrong password, retrying fast, feeds the broker's count
// until the eighth failure locks it; from then on it stops asking (no
// further attempt reaches the broker), says so in its log and through
// Locked, and once ops unlocks it a totem with the right password
// connects. Before the lock was told apart, 0x8A was retried like 0x86.
func TestLockedTotemStopsRetrying(t *testing.T) {
	dir := t.TempDir()
	reg, good, srv := registryBroker(t, dir, broker.Options{})
	box := openBox(t, dir)

	logs := new(synctest.Log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func(ctx context.Context, pass string) (*Uplink, func()) {
		u := New(Options{Totem: totem, URL: srv.URL(), Username: totem, Password: pass, Outbox: box,
			Logger:     slog.New(slog.NewTextHandler(logs, nil)),
			BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
			RefusedMin: 10 * time.Millisecond, RefusedMax: 20 * time.Millisecond,
			CredentialsRetry: 10 * time.Millisecond, LockedRetry: time.Hour})
		return u, goRun(ctx, u)
	}

	u, stop := start(ctx, good.Password+"-wrong")
	if !until(ctx, u.Locked) {
		t.Fatalf("not locked; broker %s", srv.Stats())
	}
	// Ten retry periods of a wrong password: not one more attempt.
	time.Sleep(300 * time.Millisecond)
	if s := srv.Stats(); s.BadCredentials != broker.MaxFailures-1 || s.LockedRefused != 1 {
		t.Errorf("the locked totem kept asking: %s", s)
	}
	r, _ := u.Refused()
	if r.Code != 0x8A || !strings.Contains(r.Reason, "bloccate") {
		t.Errorf("refusal %+v", r)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "credentials locked") ||
		!strings.Contains(l, "totemctl unlock "+totem) {
		t.Errorf("lock not logged:\n%s", l)
	}
	stop()

	if _, ok, err := reg.Unlock(totem); !ok || err != nil {
		t.Fatalf("unlock: %v %v", ok, err)
	}
	u, stop = start(ctx, good.Password)
	defer stop()
	if !until(ctx, u.Connected) {
		t.Fatalf("not connected after unlock; broker %s", srv.Stats())
	}
}

// Credentials past their expiry: the refusal the totem shows and logs says
// they expired (not "wrong password"), and asking again never locks them.
func TestExpiredCredentialsSaySo(t *testing.T) {
	dir := t.TempDir()
	reg, f, srv := registryBroker(t, dir, broker.Options{})
	user, _, _ := reg.Get(totem)
	user.Expires = time.Now().Add(-time.Hour)
	if err := reg.Put(user); err != nil {
		t.Fatal(err)
	}
	box := openBox(t, dir)
	logs := new(synctest.Log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := New(Options{Totem: totem, URL: srv.URL(), Username: totem, Password: f.Password, Outbox: box,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), CredentialsRetry: 10 * time.Millisecond})
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if !until(ctx, func() bool {
		r, ok := u.Refused()
		if ok && r.Count > broker.MaxFailures && (r.Code != 0x86 || r.Reason != expiredText) {
			t.Fatalf("refusal %+v", r)
		}
		return ok && r.Count > broker.MaxFailures
	}) {
		t.Fatalf("not refused %d times; broker %s", broker.MaxFailures+1, srv.Stats())
	}
	if locks, _ := reg.Locks(); len(locks) != 0 {
		t.Errorf("expired credentials locked: %+v", locks)
	}
	if !strings.Contains(logs.String(), "credenziali scadute") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}
