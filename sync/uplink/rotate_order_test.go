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

// liveHub is a broker with the registry, a hub on the reference CMS, an
// outbox and the totem's credentials file, for the tests of what the hub
// answers on the totem's subscriptions.
type liveHub struct {
	store *creds.Store
	first creds.File // the credentials provisioned
	srv   *broker.Server
	box   *outbox.Outbox
	h     *hub.Hub
}

// newLiveHub starts the rig; ctx bounds the hub, and everything stops
// when the test ends.
func newLiveHub(t *testing.T, ctx context.Context) *liveHub {
	t.Helper()
	dir := t.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	l := &liveHub{store: &creds.Store{Path: filepath.Join(dir, "creds", totem+".json")}}
	if l.first, err = reg.Provision(totem, creds.RoleTotem, l.store.Path); err != nil {
		t.Fatal(err)
	}
	me, _ := creds.Generate("hub-live", creds.RoleHub)
	users := broker.NewUsers(reg)
	if err := users.Add(me); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if l.srv, err = broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users, Logger: log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.srv.Close() })
	cms, err := refcms.Open(filepath.Join(dir, "cms.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cms.Close() })
	l.h = hub.New(hub.Options{URL: l.srv.URL(), ClientID: me.Username, Username: me.Username, Password: me.Password,
		Accounts: reg, Logger: log, Backend: cms})
	hctx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan struct{})
	go func() { l.h.Run(hctx); close(hubDone) }()
	t.Cleanup(func() { stopHub(); <-hubDone })
	if err := l.h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the hub's subscriptions follow its connection
	if l.box, err = outbox.Open(filepath.Join(dir, "outbox.db"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.box.Close() })
	return l
}

// run starts an uplink with o and the rig's totem; it is stopped when the
// test ends.
func (l *liveHub) run(t *testing.T, ctx context.Context, o Options) *Uplink {
	o.Totem, o.URL, o.Outbox, o.Store = totem, l.srv.URL(), l.box, l.store
	o.Username, o.Password = l.first.Username, l.first.Password
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	u := New(o)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return u
}

// A rotation due at the connection waits for the connection's
// subscriptions: the hub's reply comes on the rotated topic, and a reply
// that came before the subscription was lost — the rotation waited
// rotateTimeout for it, failed, and was tried again only after
// RotateCheck (an hour). Here the subscriptions are late on purpose; the
// rotation must still go through at once.
func TestRotationWaitsForTheSubscriptions(t *testing.T) {
	// Less than rotateTimeout: a lost reply fails the test.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := newLiveHub(t, ctx)
	l.run(t, ctx, Options{
		RotateAt:    time.Now().Add(-time.Second), // due at once
		beforeSetup: func() { time.Sleep(300 * time.Millisecond) },
	})
	for {
		if f, err := l.store.Load(); err == nil && f.Password != l.first.Password {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no rotation: its reply was lost; hub recorded %d rotations", l.h.Rotations())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
