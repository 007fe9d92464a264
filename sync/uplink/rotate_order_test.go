package uplink

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
)

// A rotation due at the connection waits for the connection's
// subscriptions: the hub's reply comes on the rotated topic, and a reply
// that came before the subscription was lost — the rotation waited
// rotateTimeout for it, failed, and was tried again only after
// RotateCheck (an hour). Here the subscriptions are late on purpose; the
// rotation must still go through at once.
func TestRotationWaitsForTheSubscriptions(t *testing.T) {
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
	me, _ := creds.Generate("hub-rot", creds.RoleHub)
	users := broker.NewUsers(reg)
	if err := users.Add(me); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cms, err := refcms.Open(filepath.Join(dir, "cms.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cms.Close()
	h := hub.New(hub.Options{URL: srv.URL(), ClientID: me.Username, Username: me.Username, Password: me.Password,
		Accounts: reg, Logger: log, Backend: cms})
	// Less than rotateTimeout: a lost reply fails the test.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hctx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan struct{})
	go func() { h.Run(hctx); close(hubDone) }()
	defer func() { stopHub(); <-hubDone }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the hub's subscriptions follow its connection
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()

	u := New(Options{Totem: totem, URL: srv.URL(), Username: first.Username, Password: first.Password, Outbox: box,
		Logger: log, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Store: store,
		RotateAt:    time.Now().Add(-time.Second), // due at once
		beforeSetup: func() { time.Sleep(300 * time.Millisecond) },
	})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	defer func() { stop(); <-done }()
	for {
		if f, err := store.Load(); err == nil && f.Password != first.Password {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no rotation: its reply was lost; hub recorded %d rotations", h.Rotations())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
