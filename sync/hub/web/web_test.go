package web_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/hub/web"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rig is a real hub on an embedded broker with a registry (credentials
// with expiry), a fleet registry and the web listener on a free port.
type rig struct {
	srv   *broker.Server
	reg   *broker.Registry
	fleet *hub.Fleet
	h     *hub.Hub
	web   *web.Server
	totem creds.File
	ops   creds.File // a console
	store *refcms.Store
}

// newRig is the test's context, ended after a minute or after the rig
// stops, and a rig with the default options.
func newRig(t *testing.T) (context.Context, *rig) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx, newRigWith(t, ctx, rigOptions{})
}

// rigOptions change the rig: the fleet registry's options, and a console
// (its Data and Credentials are the rig's).
type rigOptions struct {
	fleet   hub.FleetOptions
	console *web.Console
}

func newRigWith(t *testing.T, ctx context.Context, o rigOptions) *rig {
	t.Helper()
	c := synctest.Start(t, synctest.Options{Registry: true})
	c.Registry.SetValidity(web.TestValidity)
	tc := c.AddUser(synctest.User{Name: "t-web-1", Role: creds.RoleTotem})
	ops, _ := creds.Generate("ops-w", creds.RoleConsole)
	if err := c.Users.Add(ops); err != nil { // in memory, as the hub's: no credentials of the registry's
		t.Fatal(err)
	}
	fleet, err := hub.OpenFleet(filepath.Join(c.Dir, "presence.db"), o.fleet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	fleet.Provisioned("t-web-1", "t-web-never")
	h := c.StartHub(hub.Options{ClientID: "totemhub-w", Fleet: fleet, Accounts: c.Registry}).Hub
	srv, reg, store := c.Broker, c.Registry, c.CMS
	metrics := web.NewRegistry(web.Sources{Hub: h.Stats(), Queued: h.Queued, Broker: srv.Stats, Connections: srv.Connections,
		Fleet: fleet, Credentials: reg.Credentials})
	if o.console != nil {
		o.console.Data, o.console.Credentials = store, reg.Credentials
	}
	ws, err := web.Start(web.Options{Listen: "127.0.0.1:0", Registry: metrics, Fleet: fleet, Console: o.console, Ready: []web.Check{
		{Name: "broker", Fn: h.AwaitConnection}, {Name: "store", Fn: func(context.Context) error { return store.Writable() }}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &rig{srv: srv, reg: reg, fleet: fleet, h: h, web: ws, totem: tc, ops: ops, store: store}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	resp, body := web.Do(t, http.DefaultClient, req)
	return resp.StatusCode, body
}

// connect connects a plain MQTT 5 client (no reconnection) as f to the
// rig's broker, disconnected when the test ends.
func connect(t *testing.T, ctx context.Context, r *rig, f creds.File, keepAlive uint16) *paho.Client {
	t.Helper()
	u, _ := url.Parse(r.srv.URL())
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: f.Username})
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Connect(ctx, &paho.Connect{KeepAlive: keepAlive, CleanStart: true, ClientID: f.Username,
		Username: f.Username, Password: []byte(f.Password), UsernameFlag: true, PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	return c
}

// poll GETs u until ok holds of the answer or ctx ends, and returns the
// last body and whether ok held.
func poll(t *testing.T, ctx context.Context, u string, ok func(code int, body string) bool) (string, bool) {
	t.Helper()
	for {
		code, body := get(t, u)
		if ok(code, body) {
			return body, true
		}
		select {
		case <-ctx.Done():
			return body, false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// scrape is the rig's /metrics once it shows the telemetry of
// totemPublish (or the last scrape when ctx ends first).
func scrape(t *testing.T, ctx context.Context, r *rig) string {
	t.Helper()
	body, _ := poll(t, ctx, "http://"+r.web.Addr()+"/metrics", func(_ int, body string) bool {
		return strings.Contains(body, `totem_outbox_pending{totem="t-web-1"} 7`)
	})
	return body
}

// totemPublish connects as the totem and publishes its birth and a
// telemetry report with hostile device names.
func totemPublish(t *testing.T, ctx context.Context, r *rig, oldest time.Time) {
	t.Helper()
	c := connect(t, ctx, r, r.totem, 30)
	st, _ := protocol.Marshal(protocol.State{V: 1, Totem: r.totem.Username, Status: protocol.Online, Since: time.Now(),
		Boot: "b1", Session: 1, Version: "1.2.3<script>", Location: "Atrio <b>"})
	if _, err := c.Publish(ctx, &paho.Publish{Topic: protocol.Topic(r.totem.Username, protocol.LeafState), QoS: 1, Retain: true, Payload: st}); err != nil {
		t.Fatal(err)
	}
	tm, _ := protocol.Marshal(protocol.Telemetry{V: 1, Totem: r.totem.Username, At: time.Now(),
		Queue:   protocol.Queue{Depth: 7, OldestSeq: 3, Oldest: oldest},
		Devices: map[string]string{"printer": "paper_out", "reader": "ok", "x\x1b[31m": "<b>"},
		Storage: &protocol.Storage{Pending: 7, Fraction: 0.25, Quarantined: 2}})
	if _, err := c.Publish(ctx, &paho.Publish{Topic: protocol.Topic(r.totem.Username, protocol.LeafTelemetry), QoS: 1, Payload: tm}); err != nil {
		t.Fatal(err)
	}
}

// A scrape of /metrics on a real hub shows the hub's and the broker's
// series and one set per totem of the registry, from its birth and
// telemetry and from the credentials registry; the output passes the
// linter.
func TestMetricsShowTotem(t *testing.T) {
	ctx, r := newRig(t)
	oldest := time.Unix(1796000000, 0)
	totemPublish(t, ctx, r, oldest)
	body := scrape(t, ctx, r)
	u, _, _ := r.reg.Get("t-web-1")
	for _, want := range []string{
		`totem_online{totem="t-web-1"} 1`,
		`totem_online{totem="t-web-never"} 0`,
		`totem_outbox_oldest_pending_timestamp_seconds{totem="t-web-1"} 1.796e+09`,
		`totem_outbox_usage_ratio{totem="t-web-1"} 0.25`,
		`totem_outbox_quarantined{totem="t-web-1"} 2`,
		`totem_device_up{device="printer",totem="t-web-1"} 0`,
		`totem_device_up{device="reader",totem="t-web-1"} 1`,
		`totem_device_state{device="printer",state="paper_out",totem="t-web-1"} 1`,
		"totem_device_state{device=\"x\uFFFD[31m\",state=\"<b>\",totem=\"t-web-1\"} 1",
		`totem_info{location="Atrio <b>",totem="t-web-1",version="1.2.3<script>"} 1`,
		`totem_credentials_locked{totem="t-web-1"} 0`,
		`totem_credentials_expiry_timestamp_seconds{totem="t-web-1"} ` + strconv.FormatFloat(float64(u.Expires.Unix()), 'g', -1, 64),
		`totemhub_broker_locked_users 0`,
		`totemhub_ops_dropped_total 0`,
		`totemhub_ops_foreign_total 0`,
		`totemhub_ops_applied_total{kind="consent",outcome="accepted"} 0`,
		`totemhub_ops_applied_total{kind="other",outcome="rejected"} 0`,
		"# TYPE totemhub_batch_duration_seconds histogram",
		`totemhub_broker_auth_failures_total{reason="bad_credentials"} 0`,
		`totemhub_broker_takeover_waits_total{result="timeout"} 0`,
		"# TYPE totem_last_seen_timestamp_seconds gauge",
		"# TYPE totemhub_broker_connections gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	if strings.Contains(body, "\x1b") {
		t.Error("an escape character reached /metrics")
	}
	// Every metric the shipped alert rules name is in the scrape.
	rules, err := os.ReadFile("../../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\btotem(?:hub)?_[a-z_]+`).FindAllString(string(rules), -1)
	if len(names) < 10 {
		t.Fatalf("alerts.yml names only %v", names)
	}
	for _, n := range names {
		if !strings.Contains(body, "\n# TYPE "+n+" ") {
			t.Errorf("alerts.yml uses %s, which the hub does not export", n)
		}
	}
	metrics := web.NewRegistry(web.Sources{Hub: r.h.Stats(), Queued: r.h.Queued, Broker: r.srv.Stats, Connections: r.srv.Connections,
		Fleet: r.fleet, Credentials: r.reg.Credentials})
	problems, err := testutil.GatherAndLint(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// /healthz answers while the process lives; /readyz 200 while every
// check holds and 503 naming the one that does not.
func TestHealthAndReady(t *testing.T) {
	_, r := newRig(t)
	base := "http://" + r.web.Addr()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || body != "broker: ok\nstore: ok\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	h := web.Handler(web.Options{Ready: []web.Check{{Name: "broker", Fn: func(context.Context) error { return nil }},
		{Name: "store", Fn: func(context.Context) error { return errors.New("read-only") }}}})
	ts := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.Serve(ln)
	defer ts.Close()
	if code, body := get(t, "http://"+ln.Addr().String()+"/readyz"); code != 503 || !strings.Contains(body, "store: read-only") {
		t.Fatalf("/readyz with a failing store: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+ln.Addr().String()+"/metrics"); code != 404 {
		t.Fatalf("/metrics without a registry: %d", code)
	}
}

// promtool, Prometheus' own checker, finds nothing to say about a scrape
// of a real hub with a totem (Debian's prometheus package ships it; .ci/run
// installs it).
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): promtool check metrics not run")
	}
	ctx, r := newRig(t)
	totemPublish(t, ctx, r, time.Unix(1796000000, 0))
	body := scrape(t, ctx, r)
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// Console commands to the hub are counted by outcome: a payload that is
// no command as invalid, an unsigned one by its cmdsig code (this hub
// trusts no key); the queue depth is shown.
func TestMetricsCountCommands(t *testing.T) {
	ctx, r := newRig(t)
	c := connect(t, ctx, r, r.ops, 30)
	unsigned, _ := protocol.Marshal(protocol.Command{V: 1, ID: "0123456789abcdef", Name: "fleet"})
	for _, payload := range [][]byte{[]byte("{not a command"), unsigned} {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: payload,
			Properties: &paho.PublishProperties{ResponseTopic: protocol.HubRoot + "/reply/" + r.ops.Username}}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`totemhub_commands_refused_total{code="invalid"} 1`, `totemhub_commands_refused_total{code="unknown_key"} 1`,
		`totemhub_commands_refused_total{code="replayed"} 0`, `totemhub_commands_total{result="ok"} 0`,
		"totemhub_queue_operations 0"}
	body, ok := poll(t, ctx, "http://"+r.web.Addr()+"/metrics", func(_ int, body string) bool {
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("/metrics never showed %q:\n%s", want, body)
	}
}

// The fleet page of a real hub on the loopback lists its totems with what
// they sent rendered inert; off the loopback the page is refused (no ops
// accounts yet) and says why, while /metrics stays.
func TestFleetPage(t *testing.T) {
	ctx, r := newRig(t)
	totemPublish(t, ctx, r, time.Unix(1796000000, 0))
	body, _ := poll(t, ctx, "http://"+r.web.Addr()+"/", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "printer: paper_out")
	})
	for _, want := range []string{"<td>t-web-1</td>", "<td>in linea</td>", "<td>7</td>", "1.2.3&lt;script&gt;",
		"x\uFFFD[31m: &lt;b&gt;", "<td>t-web-never</td>", "mai visto", "device:printer"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>") || strings.Contains(body, "\x1b") {
		t.Errorf("a value a totem sent is rendered live:\n%s", body)
	}
	if i, j := strings.Index(body, "t-web-1<"), strings.Index(body, "t-web-never<"); i < 0 || j < 0 || i > j {
		t.Errorf("the totem with an alert is not listed before the one never seen:\n%s", body)
	}
	if code, _ := get(t, "http://"+r.web.Addr()+"/other"); code != 404 {
		t.Errorf("/other: %d, want 404", code)
	}
	srv := httptest.NewServer(web.Handler(web.Options{Listen: "0.0.0.0:9880", Fleet: r.fleet, Registry: prometheus.NewRegistry()}))
	defer srv.Close()
	code, body := get(t, srv.URL+"/")
	if code != 403 || !strings.Contains(body, "loopback") || strings.Contains(body, "t-web-1") {
		t.Fatalf("page off the loopback: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/metrics"); code != 200 {
		t.Fatalf("/metrics off the loopback: %d", code)
	}
}
