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
	"github.com/aslcns/totem/sync/synctest"
)

// liveHub is a broker with the registry, a hub on the reference CMS, an
// outbox and the totem's credentials file, for the tests of what the hub
// answers on the totem's subscriptions.
type liveHub struct {
	*synctest.Central
	store *creds.Store
	first creds.File // the credentials provisioned
	srv   *broker.Server
	box   *outbox.Outbox
	h     *synctest.Hub
}

// newLiveHub starts the rig, logging to log (nil discards); everything
// stops when the test ends.
func newLiveHub(t *testing.T, log *slog.Logger) *liveHub {
	t.Helper()
	c := synctest.Start(t, synctest.Options{Registry: true, Logger: log, CMS: &refcms.Options{},
		Users: []synctest.User{{Name: totem, Role: creds.RoleTotem}}})
	l := &liveHub{Central: c, store: &creds.Store{Path: filepath.Join(c.Dir, "creds", totem+".json")},
		first: c.Creds(totem), srv: c.Broker}
	l.h = c.StartHub(hub.Options{Accounts: c.Registry})
	l.box = openBox(t, c.Dir)
	return l
}

// run starts an uplink with o and the rig's totem; it is stopped when the
// test ends.
func (l *liveHub) run(t *testing.T, ctx context.Context, o Options) *Uplink {
	o.Totem, o.URL, o.Outbox, o.Store = totem, l.srv.URL(), l.box, l.store
	o.Username, o.Password = l.first.Username, l.first.Password
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	u := New(o)
	t.Cleanup(goRun(ctx, u))
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
	l := newLiveHub(t, nil)
	l.run(t, ctx, Options{
		RotateAt:    time.Now().Add(-time.Second), // due at once
		beforeSetup: func() { time.Sleep(300 * time.Millisecond) },
	})
	if !until(ctx, func() bool {
		f, err := l.store.Load()
		return err == nil && f.Password != l.first.Password
	}) {
		t.Fatalf("no rotation: its reply was lost; hub recorded %d rotations", l.h.Rotations())
	}
}
