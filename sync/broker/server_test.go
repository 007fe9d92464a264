package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
)

const (
	codeClientIDNotValid = 0x85 // CONNACK: client identifier not valid
	codeBadCredentials   = 0x86 // CONNACK: bad user name or password
	codeNotAuthorized    = 0x87 // CONNACK / PUBACK / SUBACK: not authorized
	codeRetainNotSupp    = 0x9A // CONNACK / PUBACK: retain not supported
)

// closesWithin closes srv and reports whether Close returned within d.
func closesWithin(srv *Server, d time.Duration) bool {
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// syncBuffer is a log sink the broker's goroutines can share with the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fleet struct {
	srv   *Server
	reg   *Registry
	users map[string]creds.File
	logs  *syncBuffer
}

// startFleet starts a broker on 127.0.0.1:0 with totems A and B and
// console C1 in a registry, and hub "hub-1" in memory only.
func startFleet(t *testing.T, maxPacket int) *fleet {
	t.Helper()
	dir := t.TempDir()
	reg := openRegistry(t, filepath.Join(dir, "users.db"))
	users := NewUsers(reg)
	f := &fleet{reg: reg, users: make(map[string]creds.File), logs: new(syncBuffer)}
	for _, u := range []struct{ name, role string }{
		{"A", creds.RoleTotem}, {"B", creds.RoleTotem}, {"C1", creds.RoleConsole},
	} {
		c, err := reg.Provision(u.name, u.role, filepath.Join(dir, u.name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		f.users[u.name] = c
	}
	hub, err := creds.Generate("hub-1", creds.RoleHub)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Add(hub); err != nil {
		t.Fatal(err)
	}
	f.users["hub-1"] = hub

	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := Start(Options{Listen: "127.0.0.1:0", Auth: users, MaxPacket: maxPacket, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	t.Cleanup(func() {
		if !closesWithin(srv, 10*time.Second) {
			t.Error("server Close did not return")
		}
		// No secret ever reaches a log line.
		logs := f.logs.String()
		for _, c := range f.users {
			if strings.Contains(logs, c.Password) {
				t.Errorf("password of %s logged", c.Username)
			}
		}
	})
	return f
}

type client struct {
	*paho.Client
	msgs chan *paho.Publish
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects an MQTT 5 client; user "" connects anonymously.
func dial(t *testing.T, addr, clientID, user, pass string, will *paho.WillMessage) (*client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *paho.Publish, 1000)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { msgs <- pr.Packet; return true, nil },
		},
		PacketTimeout: 5 * time.Second,
	})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true, WillMessage: will}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	if pass != "" {
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	ca, err := c.Connect(ctxT(t), cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("client %s did not stop", clientID)
		}
	})
	return &client{Client: c, msgs: msgs}, ca, nil
}

// login connects username with its own credentials and client id.
func (f *fleet) login(t *testing.T, clientID, username string) *client {
	t.Helper()
	c, _, err := dial(t, f.srv.Addr(), clientID, username, f.users[username].Password, nil)
	if err != nil {
		t.Fatalf("%s: %v", username, err)
	}
	return c
}

func (c *client) sub(t *testing.T, filter string) (byte, error) {
	t.Helper()
	sa, err := c.Subscribe(ctxT(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		if err == nil {
			err = fmt.Errorf("no SUBACK")
		}
		return 0xff, err
	}
	return sa.Reasons[0], err
}

func (c *client) pub(t *testing.T, topic string, payload string) (byte, error) {
	t.Helper()
	pr, err := c.Publish(ctxT(t), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if pr == nil {
		return 0xff, err
	}
	return pr.ReasonCode, err
}

// next waits for the next message.
func (c *client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

func TestConnectRefused(t *testing.T) {
	f := startFleet(t, 0)
	a := f.users["A"]
	for _, tc := range []struct {
		name, id, user, pass string
		will                 *paho.WillMessage
		want                 byte
	}{
		{"anonymous", "anon", "", "", nil, codeBadCredentials},
		{"wrong password", "A", "A", a.Password + "x", nil, codeBadCredentials},
		{"no password", "A", "A", "", nil, codeBadCredentials},
		{"password without username", "A", "", a.Password, nil, codeBadCredentials},
		{"unknown user", "Z", "Z", a.Password, nil, codeBadCredentials},
		{"another totem's name", "B", "B", a.Password, nil, codeBadCredentials},
		{"totem client id is not its username", "A-2", "A", a.Password, nil, codeClientIDNotValid},
		{"totem empty client id", "", "A", a.Password, nil, codeClientIDNotValid},
		{"will on another totem", "A", "A", a.Password, &paho.WillMessage{Topic: "totem/v1/B/state", QoS: 1, Payload: []byte("x")}, codeNotAuthorized},
		{"retained will on a topic not retained", "A", "A", a.Password, &paho.WillMessage{Topic: "totem/v1/A/event", QoS: 1, Retain: true, Payload: []byte("x")}, codeRetainNotSupp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ca, err := dial(t, f.srv.Addr(), tc.id, tc.user, tc.pass, tc.will)
			if err == nil {
				t.Fatalf("connected (%+v)", c)
			}
			if ca == nil || ca.ReasonCode != tc.want {
				t.Fatalf("CONNACK %+v, err %v; want reason %#x", ca, err, tc.want)
			}
		})
	}
	if !strings.Contains(f.logs.String(), "reason=client_id_mismatch") {
		t.Errorf("refusal not logged:\n%s", f.logs.String())
	}

	// Its own will topic is fine.
	if _, _, err := dial(t, f.srv.Addr(), "A", "A", a.Password, &paho.WillMessage{Topic: "totem/v1/A/state", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatalf("own will refused: %v", err)
	}
}

// A session belongs to the user that made it: another user cannot take
// over its client id.
func TestSessionTakeoverRefused(t *testing.T) {
	f := startFleet(t, 0)
	f.login(t, "shared", "C1")
	_, ca, err := dial(t, f.srv.Addr(), "shared", "hub-1", f.users["hub-1"].Password, nil)
	if err == nil || ca == nil || ca.ReasonCode != codeClientIDNotValid {
		t.Fatalf("takeover: CONNACK %+v, err %v; want 0x85", ca, err)
	}
	// The same user may take its own session over (a reconnecting totem).
	f.login(t, "A", "A")
	f.login(t, "A", "A")
}

func TestTotemToHub(t *testing.T) {
	f := startFleet(t, 0)
	hub := f.login(t, "hub-1-a", "hub-1")
	if code, err := hub.sub(t, protocol.SharedOpFilter); err != nil || code != 1 {
		t.Fatalf("hub subscribe: %#x %v", code, err)
	}
	a := f.login(t, "A", "A")

	if code, err := a.pub(t, protocol.Topic("A", protocol.LeafOp), "op-1"); err != nil || code != 0 {
		t.Fatalf("publish own op: %#x %v", code, err)
	}
	if m := hub.next(t); m.Topic != "totem/v1/A/op" || string(m.Payload) != "op-1" {
		t.Fatalf("hub got %s %q", m.Topic, m.Payload)
	}

	// A's credentials are worthless on B's topics.
	code, err := a.pub(t, protocol.Topic("B", protocol.LeafOp), "forged")
	if err == nil || code != codeNotAuthorized {
		t.Fatalf("publish to B's op: PUBACK %#x, err %v; want 0x87", code, err)
	}
	if code, err := a.sub(t, protocol.Topic("B", protocol.LeafCmd)); err == nil || code != codeNotAuthorized {
		t.Fatalf("subscribe to B's cmd: SUBACK %#x, err %v; want 0x87", code, err)
	}
	for _, filter := range []string{"totem/v1/+/cmd", "#", "totem/v1/A/#", "$share/x/totem/v1/A/cmd", "$SYS/#"} {
		if code, err := a.sub(t, filter); err == nil || code < 0x80 {
			t.Errorf("subscribe %s: SUBACK %#x", filter, code)
		}
	}
	// Marker: same publisher, same subscriber, so if the forgery had got
	// through, the hub would have seen it first.
	if _, err := a.pub(t, protocol.Topic("A", protocol.LeafOp), "op-2"); err != nil {
		t.Fatal(err)
	}
	if m := hub.next(t); string(m.Payload) != "op-2" {
		t.Fatalf("hub got %s %q; want op-2", m.Topic, m.Payload)
	}

	// The hub answers on A's result topic and A receives it.
	if code, err := a.sub(t, protocol.Topic("A", protocol.LeafResult)); err != nil || code != 1 {
		t.Fatalf("subscribe own result: %#x %v", code, err)
	}
	if _, err := hub.pub(t, protocol.Topic("A", protocol.LeafResult), "res-1"); err != nil {
		t.Fatal(err)
	}
	if m := a.next(t); string(m.Payload) != "res-1" {
		t.Fatalf("totem got %q", m.Payload)
	}
	if code, _ := hub.pub(t, protocol.Topic("A", protocol.LeafCmd), "x"); code != codeNotAuthorized {
		t.Fatalf("hub publish cmd: %#x", code)
	}
	if !strings.Contains(f.logs.String(), "reason=write_denied") {
		t.Error("ACL refusal not logged")
	}
}

func TestConsole(t *testing.T) {
	f := startFleet(t, 0)
	con := f.login(t, "console-1", "C1")
	a := f.login(t, "A", "A")

	if code, err := a.sub(t, protocol.Topic("A", protocol.LeafCmd)); err != nil || code != 1 {
		t.Fatalf("totem subscribe cmd: %#x %v", code, err)
	}
	for _, filter := range []string{"totem/v1/+/state", "totem/v1/+/reply/C1"} {
		if code, err := con.sub(t, filter); err != nil || code != 1 {
			t.Fatalf("console subscribe %s: %#x %v", filter, code, err)
		}
	}
	for _, filter := range []string{"totem/v1/+/op", "totem/v1/A/op", "totem/v1/+/result", "#", "totem/v1/+/reply/C2"} {
		if code, err := con.sub(t, filter); err == nil || code != codeNotAuthorized {
			t.Errorf("console subscribe %s: %#x %v; want 0x87", filter, code, err)
		}
	}

	if code, err := con.pub(t, protocol.Topic("A", protocol.LeafCmd), "ping"); err != nil || code != 0 {
		t.Fatalf("console publish cmd: %#x %v", code, err)
	}
	if m := a.next(t); m.Topic != "totem/v1/A/cmd" || string(m.Payload) != "ping" {
		t.Fatalf("totem got %s %q", m.Topic, m.Payload)
	}
	if _, err := a.pub(t, protocol.ReplyTopic("A", "C1"), "pong"); err != nil {
		t.Fatal(err)
	}
	if m := con.next(t); string(m.Payload) != "pong" {
		t.Fatalf("console got %s %q", m.Topic, m.Payload)
	}
	if _, err := a.pub(t, protocol.Topic("A", protocol.LeafState), "online"); err != nil {
		t.Fatal(err)
	}
	if m := con.next(t); m.Topic != "totem/v1/A/state" || string(m.Payload) != "online" {
		t.Fatalf("console got %s %q", m.Topic, m.Payload)
	}
	if code, _ := con.pub(t, protocol.Topic("A", protocol.LeafOp), "x"); code != codeNotAuthorized {
		t.Fatalf("console publish op: %#x", code)
	}
}

func TestSharedSubscriptionSplits(t *testing.T) {
	f := startFleet(t, 0)
	h1 := f.login(t, "hub-1-a", "hub-1")
	h2 := f.login(t, "hub-1-b", "hub-1")
	for _, h := range []*client{h1, h2} {
		if code, err := h.sub(t, protocol.SharedOpFilter); err != nil || code != 1 {
			t.Fatalf("subscribe: %#x %v", code, err)
		}
	}
	a := f.login(t, "A", "A")
	const n = 50
	for i := range n {
		if _, err := a.pub(t, protocol.Topic("A", protocol.LeafOp), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}

	seen := make(map[string]int)
	per := [2]int{}
	record := func(i int, m *paho.Publish) {
		seen[string(m.Payload)]++
		per[i]++
	}
	deadline := time.After(5 * time.Second)
	for per[0]+per[1] < n {
		select {
		case m := <-h1.msgs:
			record(0, m)
		case m := <-h2.msgs:
			record(1, m)
		case <-deadline:
			t.Fatalf("got %d of %d messages", per[0]+per[1], n)
		}
	}
	// Give duplicates a moment to show up.
	for quiet := time.After(300 * time.Millisecond); ; {
		select {
		case m := <-h1.msgs:
			record(0, m)
			continue
		case m := <-h2.msgs:
			record(1, m)
			continue
		case <-quiet:
		}
		break
	}
	if per[0]+per[1] != n || len(seen) != n {
		t.Fatalf("delivered %d (%d distinct), want %d each once", per[0]+per[1], len(seen), n)
	}
	for p, k := range seen {
		if k != 1 {
			t.Errorf("message %s delivered %d times", p, k)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("no split: %v", per)
	}
	t.Logf("split %v", per)
}

func TestOversizedPacket(t *testing.T) {
	f := startFleet(t, 4096)
	hub := f.login(t, "hub-1-a", "hub-1")
	if _, err := hub.sub(t, protocol.SharedOpFilter); err != nil {
		t.Fatal(err)
	}
	a := f.login(t, "A", "A")
	// mochi drops the connection without a PUBACK: don't wait the full timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	big := &paho.Publish{Topic: protocol.Topic("A", protocol.LeafOp), QoS: 1, Payload: bytes.Repeat([]byte("x"), 8192)}
	if _, err := a.Publish(ctx, big); err == nil {
		t.Fatal("oversized publish acknowledged")
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("oversized client still connected")
	}
	select {
	case m := <-hub.msgs:
		t.Fatalf("oversized message delivered (%d bytes)", len(m.Payload))
	default:
	}

	// The broker still serves others.
	b := f.login(t, "B", "B")
	if code, err := b.pub(t, protocol.Topic("B", protocol.LeafOp), "small"); err != nil || code != 0 {
		t.Fatalf("publish after oversized: %#x %v", code, err)
	}
	if m := hub.next(t); string(m.Payload) != "small" {
		t.Fatalf("hub got %q", m.Payload)
	}
	if !strings.Contains(f.logs.String(), `level=WARN msg="packet too large"`) {
		t.Errorf("oversized packet not logged:\n%s", f.logs.String())
	}
}

func TestStartOptions(t *testing.T) {
	if _, err := Start(Options{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("started without an authenticator")
	}
	if _, err := Start(Options{Auth: NewUsers(nil)}); err == nil {
		t.Error("started without an address")
	}
	s, err := Start(Options{Listen: "127.0.0.1:0", Auth: NewUsers(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.HasSuffix(s.Addr(), ":0") || s.URL() != "mqtt://"+s.Addr() {
		t.Fatalf("Addr %q URL %q", s.Addr(), s.URL())
	}
	if _, err := Start(Options{Listen: s.Addr(), Auth: NewUsers(nil)}); err == nil {
		t.Error("second server on the same port")
	}
}

func TestCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		f := startFleet(t, 0)
		c := f.login(t, "A", "A")
		if _, err := c.pub(t, protocol.Topic("A", protocol.LeafOp), "x"); err != nil {
			t.Fatal(err)
		}
		// Close with a client still connected: the server must drop it.
		if err := f.srv.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client not disconnected by Close")
		}
		if err := f.srv.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// A connection that never sends its CONNECT is not one of mochi's clients,
// yet mochi's Close waits for it: Close must still return, and the
// connection ends.
func TestCloseWithSilentConnection(t *testing.T) {
	srv, err := Start(Options{Listen: "127.0.0.1:0", Auth: NewUsers(nil)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // accepted, waiting for CONNECT
	if !closesWithin(srv, 30*time.Second) {
		t.Fatal("Close did not return with a silent connection open")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the silent connection is still open")
	}
}

// TestCloseWhileClientsChurn closes the broker while clients keep
// connecting and leaving: mochi's own Close takes its clients' read lock
// twice, so a client leaving at that moment deadlocked it. Close must
// return every time.
func TestCloseWhileClientsChurn(t *testing.T) {
	for round := range 5 {
		f := startFleet(t, 0)
		a := f.users["A"]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := 0; i < 500; i++ { // bounded
					select {
					case <-stop:
						return
					default:
					}
					conn, err := net.DialTimeout("tcp", f.srv.Addr(), time.Second)
					if err != nil {
						return // closed
					}
					c := paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: time.Second})
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					if _, err := c.Connect(ctx, &paho.Connect{ClientID: a.Username, KeepAlive: 30, CleanStart: true,
						Username: a.Username, UsernameFlag: true, Password: []byte(a.Password), PasswordFlag: true}); err == nil {
						c.Disconnect(&paho.Disconnect{})
					}
					cancel()
					conn.Close()
				}
			})
		}
		time.Sleep(time.Duration(50+round*30) * time.Millisecond)
		done := make(chan struct{})
		go func() { f.srv.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Close did not return while clients came and went", round)
		}
		close(stop)
		wg.Wait()
	}
}
