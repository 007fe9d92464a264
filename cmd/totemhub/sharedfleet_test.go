package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/paho"
	"github.com/jackc/pgx/v5"
)

// testHub is a totemhub run in the test: its ops listener and broker.
type testHub struct {
	base, addr string
	logs       *syncBuffer
	stop       func()
}

// hubConf is a test hub's configuration: its own state_dir and
// credentials_dir in dir, the database dbURL ("": bbolt), fleet.console
// (console, may be empty) and fleet.provision.
type hubConf struct {
	dir, dbURL, console string
	provision           []string
	// broker, when set, is the external broker's URL (--broker), with
	// brokerTOML the rest of its [broker] section; else an embedded
	// broker on a free loopback port.
	broker, brokerTOML string
}

func (c hubConf) path() string { return filepath.Join(c.dir, "totemhub.toml") }

// writeConf writes c's configuration file, with an ops listener on a
// free loopback port.
func writeConf(t *testing.T, c hubConf) {
	t.Helper()
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	prov := make([]string, len(c.provision))
	for i, p := range c.provision {
		prov[i] = fmt.Sprintf("%q", p)
	}
	brokerTOML := "listen = \"127.0.0.1:0\"\ntls_listen = \"\"\n"
	if c.broker != "" {
		brokerTOML = c.brokerTOML
	}
	doc := fmt.Sprintf("state_dir = %q\n[store]\nurl = %q\n[broker]\n%s"+
		"[fleet]\ncredentials_dir = %q\nprovision = [%s]\nconsole = %q\n[http]\nlisten = \"127.0.0.1:0\"\n",
		filepath.Join(c.dir, "state"), c.dbURL, brokerTOML, filepath.Join(c.dir, "creds"), strings.Join(prov, ", "), c.console)
	if err := os.WriteFile(c.path(), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTestHub writes c's configuration and runs totemhub on it.
func startTestHub(t *testing.T, ctx context.Context, c hubConf) *testHub {
	t.Helper()
	writeConf(t, c)
	args := []string{"--config", c.path()}
	if c.broker != "" {
		args = append(args, "--broker", c.broker)
	}
	hctx, cancel := context.WithCancel(ctx)
	h := &testHub{logs: new(syncBuffer)}
	done := make(chan error, 1)
	go func() { done <- run(hctx, args, strings.NewReader(""), io.Discard, h.logs) }()
	stopped := false
	h.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("totemhub in %s: %v", c.dir, err)
			}
		}
	}
	t.Cleanup(h.stop)
	webRE := regexp.MustCompile(`msg="ops listener" subsystem=http url=(http://\S+/) `)
	brokerRE := regexp.MustCompile(`embedded broker listening.* addr=(\S+)`)
	if c.broker != "" {
		h.addr = strings.TrimPrefix(c.broker, "mqtt://")
	}
	for h.base == "" || h.addr == "" {
		if m := webRE.FindStringSubmatch(h.logs.String()); m != nil {
			h.base = m[1]
		}
		if m := brokerRE.FindStringSubmatch(h.logs.String()); m != nil {
			h.addr = m[1]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the hub did not start:\n%s", h.logs.String())
		case err := <-done:
			stopped = true
			t.Fatalf("totemhub stopped: %v\n%s", err, h.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return h
}

var fleetCalls int

// fleetCommand is totemctl status through h: the fleet command signed
// with h's console key (fleet.console "console", credentials in credDir).
func fleetCommand(t *testing.T, ctx context.Context, h *testHub, credDir string) hub.FleetPage {
	t.Helper()
	cf, err := creds.Load(filepath.Join(credDir, "console.json"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cmdsig.LoadPrivate(filepath.Join(credDir, "console.key"))
	if err != nil {
		t.Fatal(err)
	}
	code, cc, replies := mqttLogin(t, h.addr, fmt.Sprintf("console-%d", fleetCalls), "console", cf.Password)
	if code != 0 {
		t.Fatalf("the console refused: 0x%02X", code)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cc.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.HubReplyTopic("console"), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	fleetCalls++
	c := protocol.Command{V: 1, ID: fmt.Sprintf("fleet-%016d", fleetCalls), Name: "fleet"}
	if err := cmdsig.Sign(key, &c, cmdsig.HubTarget, "", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	b, _ := protocol.Marshal(c)
	if _, err := cc.Publish(sctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
		Properties: &paho.PublishProperties{ResponseTopic: protocol.HubReplyTopic("console")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-replies:
		var r protocol.Reply
		var page hub.FleetPage
		if err := json.Unmarshal(p.Payload, &r); err != nil || !r.OK || json.Unmarshal(r.Data, &page) != nil {
			t.Fatalf("fleet: reply %s %v", p.Payload, err)
		}
		return page
	case <-sctx.Done():
		t.Fatal("fleet: no reply from the hub")
	}
	return hub.FleetPage{}
}

func (h *testHub) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(h.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
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
	srv := pgtest.Private(t, pgtest.Options{NoFsync: true})
	dbURL, err := srv.NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := startTestHub(t, ctx, hubConf{dir: filepath.Join(dir, "a"), dbURL: dbURL, provision: []string{"t-a", "t-off"}})
	b := startTestHub(t, ctx, hubConf{dir: filepath.Join(dir, "b"), dbURL: dbURL, console: "console"})

	id, err := creds.Load(filepath.Join(dir, "a", "creds", "t-a.json"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := outbox.Open(filepath.Join(dir, "t-a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	for range 3 {
		if _, err := box.Enqueue(cms.KindConsent, consentOp(), time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	uctx, ucancel := context.WithCancel(ctx)
	upDone := make(chan error, 1)
	up := uplink.New(uplink.Options{Totem: id.Username, URL: "mqtt://" + a.addr, Username: id.Username, Password: id.Password,
		Outbox: box, ResendAfter: 300 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Version: "9.9.9", Location: "Atrio"})
	go func() { upDone <- up.Run(uctx) }()
	defer func() { ucancel(); <-upDone }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: not within the time\nhub A:\n%s\nhub B:\n%s", what, a.logs.String(), b.logs.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
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
	ucancel()
	<-upDone
	upDone <- nil

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
	for _, h := range []string{"a", "b"} {
		for _, f := range []string{"fleet.db", "presence.db"} {
			if _, err := os.Stat(filepath.Join(dir, h, "state", f)); !os.IsNotExist(err) {
				t.Errorf("hub %s keeps %s with [store] url: %v", h, f, err)
			}
		}
	}
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
	srv := pgtest.Private(t, pgtest.Options{NoFsync: true})
	dbURL, err := srv.NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := func(name string, provision ...string) hubConf {
		d := filepath.Join(dir, name)
		return hubConf{dir: d, dbURL: dbURL, provision: provision, broker: "mqtt://" + addr,
			brokerTOML: fmt.Sprintf("credentials_file = %q\ndynsec = true\ndynsec_user = \"dynsec-admin\"\ndynsec_password_file = %q\n",
				filepath.Join(d, "creds", "hub-"+name+".json"), pwFile)}
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

	id, err := creds.Load(filepath.Join(ca.dir, "creds", "t-01.json"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := outbox.Open(filepath.Join(dir, "t-01.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	for range 3 {
		if _, err := box.Enqueue(cms.KindConsent, consentOp(), time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	uctx, ucancel := context.WithCancel(ctx)
	upDone := make(chan error, 1)
	up := uplink.New(uplink.Options{Totem: id.Username, URL: "mqtt://" + addr, Username: id.Username, Password: id.Password,
		Outbox: box, ResendAfter: 300 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	go func() { upDone <- up.Run(uctx) }()
	defer func() { ucancel(); <-upDone }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: not within the time\nhub A:\n%s\nhub B:\n%s", what, a.logs.String(), b.logs.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
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
	ucancel()
	<-upDone
	upDone <- nil
	a.stop()
	b.stop()
	for _, h := range []string{"a", "b"} {
		for _, f := range []string{"fleet.db", "presence.db"} {
			if _, err := os.Stat(filepath.Join(dir, h, "state", f)); !os.IsNotExist(err) {
				t.Errorf("hub %s with --broker keeps %s: %v", h, f, err)
			}
		}
	}
}
