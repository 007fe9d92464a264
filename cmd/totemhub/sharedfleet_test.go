package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/jackc/pgx/v5"
)

// fleetCommand is totemctl status through h: the fleet command signed
// with h's console key (fleet.console "console", credentials in credDir).
func fleetCommand(t *testing.T, ctx context.Context, h *testHub, credDir string) hub.FleetPage {
	t.Helper()
	var page hub.FleetPage
	data := dialConsole(t, ctx, h.addr, credDir, fmt.Sprintf("console-%d", consoleCalls)).command(ctx, "fleet", nil)
	if err := json.Unmarshal(data, &page); err != nil {
		t.Fatalf("fleet: reply %s %v", data, err)
	}
	return page
}

// Two totemhub processes on one PostgreSQL, each with its own state_dir,
// credentials_dir and embedded broker: a totem provisioned and heard by
// hub A only is listed by hub B (its metrics, and the signed fleet
// command of totemctl status, with the answer A gave to its last
// operation) with its
// presence and backlog, and so is a totem provisioned at A and never
// seen; its secret, known to A's registry, works at B's broker; once A's
// broker locked it after eight wrong secrets, B's refuses it too. A
// totem provisioned with the command line while they run is listed by
// both. Neither keeps fleet.db or presence.db.
func TestHubsShareFleetRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, dbURL := migratedDB(t, ctx, pgtest.Options{NoFsync: true})
	dir := t.TempDir()
	a := startTestHub(t, ctx, hubConf{dir: filepath.Join(dir, "a"), dbURL: dbURL, provision: []string{"t-a", "t-off"}})
	b := startTestHub(t, ctx, hubConf{dir: filepath.Join(dir, "b"), dbURL: dbURL, console: "console"})

	id := loadCreds(t, filepath.Join(dir, "a", "creds", "t-a.json"))
	box := consentBox(t, filepath.Join(dir, "t-a.db"), 3)
	stopUplink := startUplink(t, ctx, id, a.addr, box, "9.9.9", "Atrio")
	waitFor := func(what string, cond func() bool) { t.Helper(); until(t, ctx, what, cond, a, b) }
	// B never heard from t-a: it lists it from the registry A writes.
	waitFor("hub B lists t-a online and t-off never seen", func() bool {
		m := b.get(t, "metrics")
		return strings.Contains(m, `totem_online{totem="t-a"} 1`) && strings.Contains(m, `totem_online{totem="t-off"} 0`) &&
			strings.Contains(m, `totem_info{location="Atrio",totem="t-a",version="9.9.9"} 1`)
	})
	waitFor("t-a's operations applied", func() bool { q, _ := box.Stats(); return q.Depth == 0 })
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	waitFor("the answer to t-a's last operation in the shared registry", func() bool {
		var seq int
		return c.QueryRow(ctx, `SELECT last_seq FROM fleet_totems WHERE totem = 't-a'`).Scan(&seq) == nil && seq == 3
	})
	// totemctl status through hub B: the signed fleet command.
	var page hub.FleetPage
	waitFor("totemctl status through hub B", func() bool {
		page = fleetCommand(t, ctx, b, filepath.Join(dir, "b", "creds"))
		return len(page.Totems) == 2 && page.Totems[0].Last != nil && page.Totems[0].Last.Seq == 3
	})
	if page.Totems[0].Totem != "t-a" || page.Totems[0].Status != protocol.Online || page.Totems[0].Location != "Atrio" ||
		page.Totems[1].Totem != "t-off" || page.Totems[1].Status != hub.NeverSeen {
		t.Fatalf("totemctl status through hub B: %+v", page)
	}
	stopUplink()

	// The registry of broker users is shared: t-a's secret works at B.
	if code, _, _ := mqttLogin(t, b.addr, id.Username, id.Username, id.Password); code != 0 {
		t.Fatalf("t-a at hub B's broker: reason %#x, want accepted", code)
	}
	for i := range broker.MaxFailures {
		if code, _, _ := mqttLogin(t, a.addr, id.Username, id.Username, strings.Repeat("x", 43)); code == 0 {
			t.Fatalf("wrong secret %d accepted", i+1)
		}
	}
	if code, _, _ := mqttLogin(t, b.addr, id.Username, id.Username, id.Password); code == 0 {
		t.Fatal("t-a, locked through hub A, accepted at hub B")
	}
	var locked bool
	if err := c.QueryRow(ctx, `SELECT locked FROM fleet_locks WHERE username = 't-a'`).Scan(&locked); err != nil || !locked {
		t.Errorf("fleet_locks: locked %v, %v", locked, err)
	}
	// `totemhub provision` while the hubs run (no registry file to hold):
	// both list the new totem within seconds.
	var out strings.Builder
	if err := run(ctx, []string{"--config", filepath.Join(dir, "b", "totemhub.toml"), "provision", "t-new"}, nil, &out, io.Discard); err != nil {
		t.Fatalf("provision while the hubs run: %v", err)
	}
	waitFor("both hubs list t-new", func() bool {
		return strings.Contains(a.get(t, "metrics"), `totem_online{totem="t-new"} 0`) &&
			strings.Contains(b.get(t, "metrics"), `totem_online{totem="t-new"} 0`)
	})
	a.stop()
	b.stop()
	noLocalFleet(t, dir, "with [store] url")
}

// Two hub processes started with --broker on one mosquitto (dynamic
// security) and one PostgreSQL: hub B's identity, provisioned with the
// command line, is in the shared registry; B lists the totems hub A
// provisioned (t-off never connects) and the answers A or B gave; neither
// keeps fleet.db or presence.db.
func TestBrokerHubsKeepNoRegistry(t *testing.T) {
	addr, pwFile := dynsecMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, dbURL := migratedDB(t, ctx, pgtest.Options{NoFsync: true})
	dir := t.TempDir()
	conf := func(name string, provision ...string) hubConf {
		d := filepath.Join(dir, name)
		return hubConf{dir: d, dbURL: dbURL, provision: provision, addr: addr, brokerFlag: true,
			brokerTOML: dynsecTOML(filepath.Join(d, "creds"), "hub-"+name, pwFile)}
	}
	ca, cb := conf("a", "t-01", "t-off"), conf("b")
	for _, c := range []hubConf{ca, cb} {
		writeConf(t, c)
		if out, err := provisionRole(c.path(), "hub", "hub-"+filepath.Base(c.dir)); err != nil {
			t.Fatalf("%s %v", out, err)
		}
	}
	a := startTestHub(t, ctx, ca)
	b := startTestHub(t, ctx, cb)

	id := loadCreds(t, filepath.Join(ca.dir, "creds", "t-01.json"))
	box := consentBox(t, filepath.Join(dir, "t-01.db"), 3)
	stopUplink := startUplink(t, ctx, id, addr, box, "", "")
	waitFor := func(what string, cond func() bool) { t.Helper(); until(t, ctx, what, cond, a, b) }
	waitFor("t-01's operations applied", func() bool { q, _ := box.Stats(); return q.Depth == 0 })
	waitFor("hub B lists t-01 online and t-off never seen", func() bool {
		m := b.get(t, "metrics")
		return strings.Contains(m, `totem_online{totem="t-01"} 1`) && strings.Contains(m, `totem_online{totem="t-off"} 0`)
	})
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var users int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM fleet_users WHERE username IN ('hub-a', 'hub-b', 't-01', 't-off')`).Scan(&users); err != nil || users != 4 {
		t.Errorf("%d of the 4 users in the shared registry: %v", users, err)
	}
	stopUplink()
	a.stop()
	b.stop()
	noLocalFleet(t, dir, "with --broker")
}
