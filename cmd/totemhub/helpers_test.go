package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cmd/internal/benchkit"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/paho"
)

// testHub is a totemhub run in the test: its ops listener (base, "" with
// noHTTP), its broker's address and its log (stdout and stderr).
type testHub struct {
	base, addr string
	logs       *synctest.Log
	stop       func()
}

// hubConf is a test hub's configuration: its own state_dir and
// credentials_dir in dir, the database dbURL ("": bbolt), fleet.console
// (console, may be empty) and fleet.provision.
type hubConf struct {
	dir, dbURL, console string
	provision           []string
	// brokerTOML, when set, is the rest of the [broker] section of an
	// external broker at addr, given with --broker when brokerFlag;
	// else an embedded broker on a free loopback port.
	brokerTOML, addr string
	brokerFlag       bool
	// noHTTP: no ops listener ([http] listen = ""); else one on a free
	// loopback port, with httpTOML the rest of its section.
	noHTTP   bool
	httpTOML string
	logLevel string // [log] level; "": the default
}

func (c hubConf) path() string  { return filepath.Join(c.dir, "totemhub.toml") }
func (c hubConf) state() string { return filepath.Join(c.dir, "state") }
func (c hubConf) creds() string { return filepath.Join(c.dir, "creds") }

// writeConf writes c's configuration file.
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
	if c.brokerTOML != "" {
		brokerTOML = c.brokerTOML
	}
	httpTOML := "listen = \"127.0.0.1:0\"\n" + c.httpTOML
	if c.noHTTP {
		httpTOML = "listen = \"\"\n"
	}
	doc := fmt.Sprintf("state_dir = %q\n[store]\nurl = %q\n[broker]\n%s"+
		"[fleet]\ncredentials_dir = %q\nprovision = [%s]\nconsole = %q\n[http]\n%s",
		c.state(), c.dbURL, brokerTOML, c.creds(), strings.Join(prov, ", "), c.console, httpTOML)
	if c.logLevel != "" {
		doc += fmt.Sprintf("[log]\nlevel = %q\n", c.logLevel)
	}
	if err := os.WriteFile(c.path(), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	webRE    = regexp.MustCompile(`msg="ops listener" subsystem=http url=(https?://\S+/) `)
	brokerRE = regexp.MustCompile(`embedded broker listening.* addr=(\S+)`)
)

// startTestHub writes c's configuration and runs totemhub on it until the
// test ends or stop; it returns once the hub's ingest subscribed and its
// ops listener (unless noHTTP) serves.
func startTestHub(t *testing.T, ctx context.Context, c hubConf) *testHub {
	t.Helper()
	writeConf(t, c)
	args := []string{"--config", c.path()}
	if c.brokerFlag {
		args = append(args, "--broker", "mqtt://"+c.addr)
	}
	hctx, cancel := context.WithCancel(ctx)
	h := &testHub{logs: new(synctest.Log), addr: c.addr}
	done := make(chan error, 1)
	go func() { done <- run(hctx, args, strings.NewReader(""), h.logs, h.logs) }()
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
	deadline := time.After(time.Minute)
	for h.base == "" && !c.noHTTP || h.addr == "" || !strings.Contains(h.logs.String(), `msg="ingest subscribed"`) {
		if m := webRE.FindStringSubmatch(h.logs.String()); m != nil {
			h.base = m[1]
		}
		if m := brokerRE.FindStringSubmatch(h.logs.String()); m != nil && h.addr == "" {
			h.addr = m[1]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the hub did not start:\n%s", h.logs.String())
		case <-deadline:
			t.Fatalf("the hub did not start in a minute:\n%s", h.logs.String())
		case err := <-done:
			stopped = true
			t.Fatalf("totemhub stopped: %v\n%s", err, h.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return h
}

// getStatus is a GET of path on h's ops listener: the status and body.
func (h *testHub) getStatus(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(h.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *testHub) get(t *testing.T, path string) string {
	t.Helper()
	_, body := h.getStatus(t, path)
	return body
}

// until polls cond (every 50 ms: a poll may log a client in) until it
// holds; at ctx's end it fails saying what, with the hubs' logs.
func until(t *testing.T, ctx context.Context, what string, cond func() bool, hubs ...*testHub) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			var logs strings.Builder
			for i, h := range hubs {
				fmt.Fprintf(&logs, "\nhub %c:\n%s", 'A'+i, h.logs.String())
			}
			t.Fatalf("%s: not within the time%s", what, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// emptyDB starts a private PostgreSQL and returns it with a new empty
// database's URL.
func emptyDB(t *testing.T, ctx context.Context, opts pgtest.Options) (*pgtest.Server, string) {
	t.Helper()
	srv := pgtest.Private(t, opts)
	url, err := srv.NewEmptyDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return srv, url
}

// migratedDB is emptyDB with the schema migrated.
func migratedDB(t *testing.T, ctx context.Context, opts pgtest.Options) (*pgtest.Server, string) {
	t.Helper()
	srv, url := emptyDB(t, ctx, opts)
	if _, err := pgstore.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	return srv, url
}

// consentBox opens an outbox at path, closed when the test ends, with n
// consents queued.
func consentBox(t *testing.T, path string, n int) *outbox.Outbox {
	t.Helper()
	box, err := outbox.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	enqueueConsents(t, box, n)
	return box
}

// enqueueConsents queues n consents in box and returns their ids.
func enqueueConsents(t *testing.T, box *outbox.Outbox, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		e, err := box.Enqueue(cms.KindConsent, benchkit.ConsentPayload(), time.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// startUplink runs the uplink of totem id on box to the broker at addr
// until stop or the test's end.
func startUplink(t *testing.T, ctx context.Context, id creds.File, addr string, box *outbox.Outbox, version, location string) (stop func()) {
	uctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	up := uplink.New(uplink.Options{Totem: id.Username, URL: "mqtt://" + addr, Username: id.Username, Password: id.Password,
		Outbox: box, ResendAfter: 300 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Version: version, Location: location})
	go func() { done <- up.Run(uctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// loadCreds is creds.Load or the test's end.
func loadCreds(t *testing.T, path string) creds.File {
	t.Helper()
	f, err := creds.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// noLocalFleet fails if a hub of dir (a, b) keeps fleet.db or
// presence.db in its state_dir; why says with what it should not.
func noLocalFleet(t *testing.T, dir, why string) {
	t.Helper()
	for _, h := range []string{"a", "b"} {
		for _, f := range []string{"fleet.db", "presence.db"} {
			if _, err := os.Stat(filepath.Join(dir, h, "state", f)); !os.IsNotExist(err) {
				t.Errorf("hub %s %s keeps %s: %v", h, why, f, err)
			}
		}
	}
}

// dynsecMosquitto starts a private mosquitto with the dynamic-security
// plugin on a free loopback port; it returns its address and the admin's
// password file.
func dynsecMosquitto(t *testing.T) (addr, pwFile string) {
	t.Helper()
	m := synctest.StartMosquitto(t)
	return m.Addr, m.AdminPasswordFile
}

// dynsecTOML is the [broker] section of a hub of identity name on a
// mosquitto with dynamic security (pwFile: its admin's password).
func dynsecTOML(credDir, name, pwFile string) string {
	return fmt.Sprintf("credentials_file = %q\ndynsec = true\ndynsec_user = \"dynsec-admin\"\ndynsec_password_file = %q\n",
		filepath.Join(credDir, name+".json"), pwFile)
}

// mqttLogin connects to addr as f; it returns the CONNACK reason code
// and, when accepted, the client and the messages it receives.
func mqttLogin(t *testing.T, addr, clientID, username, password string) (byte, *paho.Client, chan *paho.Publish) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rx := make(chan *paho.Publish, 8)
	cl := paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			select {
			case rx <- pr.Packet:
			default:
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil {
		nc.Close()
		if ca == nil {
			t.Fatalf("connect: %v", err)
		}
		return ca.ReasonCode, nil, nil
	}
	t.Cleanup(func() { _ = cl.Disconnect(&paho.Disconnect{}); <-cl.Done() })
	return 0, cl, rx
}

// subscribe subscribes cl to topic (QoS 1).
func subscribe(t *testing.T, ctx context.Context, cl *paho.Client, topic string) {
	t.Helper()
	if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
}

// opsConsole is ops' console (fleet.console "console") logged in to a
// hub's broker, signing the hub's commands with the console's key.
type opsConsole struct {
	t       *testing.T
	key     cmdsig.PrivateKey
	cl      *paho.Client
	replies chan *paho.Publish
}

var consoleCalls int

// dialConsole logs the console, its credentials in credDir, in to the
// broker at addr as clientID and subscribes to its replies.
func dialConsole(t *testing.T, ctx context.Context, addr, credDir, clientID string) *opsConsole {
	t.Helper()
	cf := loadCreds(t, filepath.Join(credDir, "console.json"))
	key, err := cmdsig.LoadPrivate(filepath.Join(credDir, "console.key"))
	if err != nil {
		t.Fatal(err)
	}
	code, cl, replies := mqttLogin(t, addr, clientID, "console", cf.Password)
	if code != 0 {
		t.Fatalf("the console refused: 0x%02X", code)
	}
	subscribe(t, ctx, cl, protocol.HubReplyTopic("console"))
	return &opsConsole{t: t, key: key, cl: cl, replies: replies}
}

// command signs the hub command name with args, sends it and returns the
// data of its reply, which must be OK.
func (c *opsConsole) command(ctx context.Context, name string, args map[string]string) json.RawMessage {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	consoleCalls++
	cmd := protocol.Command{V: 1, ID: fmt.Sprintf("%s-%016d", name, consoleCalls), Name: name, Args: args}
	if err := cmdsig.Sign(c.key, &cmd, cmdsig.HubTarget, "", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	b, _ := protocol.Marshal(cmd)
	if _, err := c.cl.Publish(ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
		Properties: &paho.PublishProperties{ResponseTopic: protocol.HubReplyTopic("console")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-c.replies:
		var r protocol.Reply
		if err := json.Unmarshal(p.Payload, &r); err != nil || !r.OK || r.ID != cmd.ID {
			t.Fatalf("%s: reply %s %v", name, p.Payload, err)
		}
		return r.Data
	case <-ctx.Done():
		t.Fatalf("%s: no reply from the hub", name)
	}
	return nil
}
