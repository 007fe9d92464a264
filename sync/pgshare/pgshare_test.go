package pgshare_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pgshare"
	"github.com/aslcns/totem/sync/protocol"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, pgtest.Options{NoFsync: true, Migrate: func(ctx context.Context, url string) error {
		_, err := pgstore.Migrate(ctx, url)
		return err
	}}))
}

// open opens the database url as a hub process would: a pool of its own.
func open(t testing.TB, url string) *pgstore.Store {
	t.Helper()
	pg, err := pgstore.Open(context.Background(), url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	return pg
}

// Two hub processes' registries on one database: a user provisioned at
// A logs in at B; eight wrong secrets tried at A and B at once lock it
// (none of the counts lost), and the lock refuses the right secret at
// both; an unlock at A lets it in at B; a code issued at A is redeemed at
// B, once.
func TestRegistryShared(t *testing.T) {
	url := pgtest.DB(t)
	a, b := pgshare.Registry(open(t, url)), pgshare.Registry(open(t, url))
	defer a.Close()
	defer b.Close()
	path := filepath.Join(t.TempDir(), "t-1.json")
	f, err := a.Provision("t-1", creds.RoleTotem, path)
	if err != nil {
		t.Fatal(err)
	}
	if role, out, _ := b.Check("t-1", f.Password, "192.0.2.1:1"); out != broker.Accepted || role != creds.RoleTotem {
		t.Fatalf("at B: %v %q", out, role)
	}
	if g, err := b.Provision("t-1", creds.RoleTotem, path); err != nil || g.Password != f.Password {
		t.Fatalf("provisioning again at B changed the secret: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	locks := 0
	for i := range broker.MaxFailures {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			_, out, just := r.Check("t-1", strings.Repeat("x", 43), "192.0.2.9:1")
			if out == broker.Accepted {
				t.Error("a wrong secret accepted")
			}
			if just {
				mu.Lock()
				locks++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if locks != 1 {
		t.Fatalf("%d failures locked the user, want exactly 1 of %d", locks, broker.MaxFailures)
	}
	for name, r := range map[string]*broker.Registry{"A": a, "B": b} {
		if _, out, _ := r.Check("t-1", f.Password, ""); out != broker.Refused {
			t.Errorf("locked, the right secret at %s: %v, want refused", name, out)
		}
	}
	cs, err := b.Credentials()
	if err != nil || len(cs) != 1 || !cs[0].Locked || cs[0].Failures != broker.MaxFailures || cs[0].From != "192.0.2.9:1" {
		t.Fatalf("credentials at B: %+v %v", cs, err)
	}
	if _, ok, err := a.Unlock("t-1"); !ok || err != nil {
		t.Fatalf("unlock at A: %v %v", ok, err)
	}
	if _, out, _ := b.Check("t-1", f.Password, ""); out != broker.Accepted {
		t.Fatalf("unlocked at A, at B: %v", out)
	}

	now := time.Now()
	code, _, err := a.Enroll("t-2", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verifier("t-2", now); err != nil {
		t.Fatalf("the verifier at B: %v", err)
	}
	norm, _ := enroll.ParseCode(code)
	if _, err := b.Redeem("t-2", norm, now); err != nil {
		t.Fatalf("redeem at B: %v", err)
	}
	if _, err := a.Redeem("t-2", norm, now); enroll.ReasonOf(err) != enroll.ReasonUsed {
		t.Fatalf("the same code again at A: %v", err)
	}
	if names, err := a.Totems(); err != nil || strings.Join(names, ",") != "t-1,t-2" {
		t.Fatalf("totems at A: %v %v", names, err)
	}
}

// The presence store merges what hubs write of one totem apart: a write
// heard from earlier leaves the presence alone, a write answering an
// earlier operation leaves the answer alone; a registry on the database
// lists, within a few of its seconds, what another process wrote.
func TestPresenceShared(t *testing.T) {
	url := pgtest.DB(t)
	st := pgshare.Presence(open(t, url))
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	synced := true
	a := hub.TotemStatus{Totem: "t-1", Status: protocol.Online, Since: t0, LastSeen: t0.Add(time.Minute), Queue: 4,
		Version: "2.0", Last: &hub.LastOp{Seq: 5, Kind: "consent", Transport: "received", At: t0}, ClockSynced: &synced}
	stale := hub.TotemStatus{Totem: "t-1", Status: protocol.Offline, Reason: hub.ReasonSilent, LastSeen: t0, Queue: 9,
		Last: &hub.LastOp{Seq: 3, Kind: "consent", Transport: "received", At: t0}}
	if err := st.Save([]hub.TotemStatus{a}); err != nil {
		t.Fatal(err)
	}
	if err := st.Save([]hub.TotemStatus{stale, {Totem: "t-2", Status: hub.NeverSeen}}); err != nil {
		t.Fatal(err)
	}
	newer := hub.TotemStatus{Totem: "t-1", Status: protocol.Online, Since: t0, LastSeen: t0.Add(2 * time.Minute), Queue: 1}
	if err := st.Save([]hub.TotemStatus{newer}); err != nil {
		t.Fatal(err)
	}
	all, err := st.Load()
	if err != nil || len(all) != 2 {
		t.Fatalf("load: %+v %v", all, err)
	}
	g := all[0]
	if g.Status != protocol.Online || g.Queue != 1 || !g.LastSeen.Equal(newer.LastSeen) || g.Last == nil || g.Last.Seq != 5 ||
		g.ClockSynced == nil || !*g.ClockSynced {
		t.Fatalf("merged: %+v (last %+v)", g, g.Last)
	}

	// Hub B's registry, open before A writes t-3: listed within seconds.
	fb, err := hub.NewFleet(pgshare.Presence(open(t, url)), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	if n := len(fb.List(hub.FleetFilter{})); n != 2 {
		t.Fatalf("B lists %d totems at open, want 2", n)
	}
	now := time.Now().UTC()
	if err := st.Save([]hub.TotemStatus{{Totem: "t-3", Status: protocol.Online, Since: now, LastSeen: now, Queue: 7,
		Last: &hub.LastOp{Seq: 1, Kind: "consent", Transport: "received", At: now}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := fb.List(hub.FleetFilter{})
		if len(l) == 3 && l[2].Status == protocol.Online && l[2].Queue == 7 && l[2].Last != nil && l[2].Last.Seq == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B lists %+v", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A registry on a database that goes away while it has presence to
// write: the writes are refused and kept, nothing crashes, the outage is
// logged once, and once the database is back the entries are written
// and the recovery logged.
func TestPresenceSurvivesDatabaseLoss(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Private(t, pgtest.Options{})
	url, err := srv.NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	pg := open(t, url)
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	f, err := hub.NewFleet(pgshare.Presence(pg), hub.FleetOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := srv.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	f.Provisioned("t-down")
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				mu.Lock()
				t.Fatalf("%s: not within the time\n%s", what, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	has := func(s string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(logs.String(), s) }
	}
	wait("the failed write logged", has("fleet registry not written or read"))
	time.Sleep(2500 * time.Millisecond) // more failed writes: still one line
	mu.Lock()
	n := strings.Count(logs.String(), "fleet registry not written or read")
	mu.Unlock()
	if n != 1 {
		t.Errorf("the outage logged %d times, want once", n)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wait("the recovery logged", has("fleet registry written and read again"))
	all, err := pgshare.Presence(pg).Load()
	if err != nil || len(all) != 1 || all[0].Totem != "t-down" || all[0].Status != hub.NeverSeen {
		t.Fatalf("after the outage: %+v %v", all, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
