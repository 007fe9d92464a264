package hub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// Two hub processes on one PostgreSQL database (each on a broker of its
// own, so that the test says which one a command reaches) share the
// record of console commands: a command one executed, replayed to the
// other, is refused as replayed; of one command sent to both at once,
// exactly one runs it.
func TestNonceReplayAcrossHubs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := pgtest.Private(t, pgtest.Options{NoFsync: true, Migrate: func(ctx context.Context, u string) error {
		_, err := pgstore.Migrate(ctx, u)
		return err
	}})
	dbURL, err := srv.NewDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ck := newConsoleKeys(t)
	var hubs [2]*consoleConn
	for i := range hubs {
		_, c := startCentral(t, time.Minute, consoleUser("ops"))
		pg, err := pgstore.Open(ctx, dbURL, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		store, err := refcms.New(pg.CMS(), &refcms.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		v := cmdsig.NewVerifier(cmdsig.HubTarget, []cmdsig.PublicKey{ck.ops.Public(), ck.tech.Public()},
			&hub.SharedNonces{Record: pg.AdmitNonce})
		c.StartHub(hub.Options{ClientID: fmt.Sprintf("hub-%d", i), Backend: store, Verifier: v})
		hubs[i] = dialConsole(ctx, t, c.URL(), c.Creds("ops"), "ops")
	}
	send := func(i int, payload []byte) {
		t.Helper()
		hubs[i].send(t, payload, "", "c")
	}
	reply := func(i int) *protocol.Reply {
		t.Helper()
		r, _ := hubs[i].reply(t, 10*time.Second)
		if r == nil {
			t.Fatalf("hub %d: no reply", i)
		}
		return r
	}
	time.Sleep(200 * time.Millisecond) // the hubs' subscriptions
	cmd := ck.command(t, ck.ops, "report", nil)
	send(0, cmd)
	if r := reply(0); !r.OK {
		t.Fatalf("hub 0, a fresh command: %+v", r)
	}
	send(1, cmd)
	if r := reply(1); r.OK || r.Code != cmdsig.CodeReplayed {
		t.Fatalf("hub 1, the command hub 0 executed: %+v, want %s", r, cmdsig.CodeReplayed)
	}
	send(1, ck.command(t, ck.ops, "report", nil))
	if r := reply(1); !r.OK {
		t.Fatalf("hub 1, a fresh command: %+v", r)
	}
	for range 5 {
		cmd := ck.command(t, ck.ops, "report", nil)
		send(0, cmd)
		send(1, cmd)
		if a, b := reply(0), reply(1); a.OK == b.OK || (!a.OK && a.Code != cmdsig.CodeReplayed) || (!b.OK && b.Code != cmdsig.CodeReplayed) {
			t.Fatalf("one command to both hubs at once: %+v and %+v, want one run and one replayed", a, b)
		}
	}
}
