package enroll_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
)

type rig struct {
	reg  *broker.Registry
	srv  *broker.Server
	hub  *synctest.Hub
	logs *synctest.Log
}

// start runs a broker that admits the enroll user and a hub that answers
// enrollment from the broker's registry, on loopback.
func start(t *testing.T, o broker.Options) *rig {
	t.Helper()
	r := &rig{logs: &synctest.Log{}}
	log := slog.New(slog.NewTextHandler(r.logs, nil))
	o.Enroll = true
	c := synctest.Start(t, synctest.Options{Logger: log, Registry: true, Broker: o})
	r.reg, r.srv = c.Registry, c.Broker
	r.hub = c.StartHub(hub.Options{ClientID: c.HubCreds.Username, Enroller: r.reg, Accounts: r.reg, Logger: log.With("subsystem", "hub")})
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects an MQTT 5 client and returns the CONNACK's reason code
// (0: connected) with the client, which the test's end disconnects.
func dial(t *testing.T, addr, id, user, pass string, will *paho.WillMessage) (*paho.Client, chan *paho.Publish, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *paho.Publish, 16)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: 5 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { msgs <- pr.Packet; return true, nil }}})
	ca, err := c.Connect(ctxT(t), &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true, WillMessage: will,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if err != nil {
		conn.Close()
		if ca == nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		return nil, nil, ca.ReasonCode
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); <-c.Done() })
	return c, msgs, 0
}

func (r *rig) client(totem string) enroll.Client {
	return enroll.Client{URL: r.srv.URL(), Totem: totem}
}

// The code ops got exchanges once for credentials that log in; the same
// code again is refused as used and changes nothing; a wrong code, an
// expired one, one for another totem are refused with their reasons.
// No code and no password reaches a log line.
func TestExchange(t *testing.T) {
	r := start(t, broker.Options{})
	ctx := ctxT(t)
	code, exp, err := r.reg.Enroll("t-1", 7*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 14 || code[4] != '-' || code[9] != '-' || time.Until(exp) < 167*time.Hour {
		t.Fatalf("code %q expires %v", code, exp)
	}
	// Registered, but nobody knows its secret yet.
	if role, ok := r.reg.Lookup("t-1"); !ok || role != creds.RoleTotem {
		t.Fatalf("t-1 not registered: %q %v", role, ok)
	}
	f, _, err := r.client("t-1").Exchange(ctx, strings.ToLower(code))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if f.Username != "t-1" || f.Role != creds.RoleTotem {
		t.Fatalf("credentials %+v", f)
	}
	if _, _, rc := dial(t, r.srv.Addr(), "t-1", f.Username, f.Password, nil); rc != 0 {
		t.Fatalf("the enrolled totem cannot log in: 0x%02X", rc)
	}

	if _, _, err := r.client("t-1").Exchange(ctx, code); enroll.ReasonOf(err) != enroll.ReasonUsed {
		t.Fatalf("replay: %v", err)
	}
	if _, _, rc := dial(t, r.srv.Addr(), "t-1", f.Username, f.Password, nil); rc != 0 {
		t.Fatalf("a replay changed the credentials: 0x%02X", rc)
	}
	// Another totem's code is worth nothing for t-1 (and counts).
	code2, _, _ := r.reg.Enroll("t-2", time.Hour, time.Now())
	if _, _, err := r.client("t-1").Exchange(ctx, code2); enroll.ReasonOf(err) != enroll.ReasonUnknown {
		t.Fatalf("another totem's code: %v", err)
	}
	old, _, _ := r.reg.Enroll("t-3", 7*24*time.Hour, time.Now().Add(-8*24*time.Hour))
	if _, _, err := r.client("t-3").Exchange(ctx, old); enroll.ReasonOf(err) != enroll.ReasonExpired {
		t.Fatalf("expired: %v", err)
	}
	if _, _, err := r.client("never").Exchange(ctx, code); enroll.ReasonOf(err) != enroll.ReasonUnknown {
		t.Fatalf("unknown totem: %v", err)
	}
	if _, _, err := r.client("t-2").Exchange(ctx, code2); err != nil {
		t.Fatalf("t-2's own code: %v", err)
	}
	s := r.hub.EnrollStats()
	if s.OK != 2 || s.Refused[enroll.ReasonUsed] != 1 || s.Refused[enroll.ReasonUnknown] != 2 || s.Refused[enroll.ReasonExpired] != 1 {
		t.Errorf("stats %+v", s)
	}
	logs := r.logs.String()
	for _, secret := range []string{code, strings.ReplaceAll(code, "-", ""), code2, f.Password} {
		if strings.Contains(logs, secret) {
			t.Errorf("secret %q in the logs", secret)
		}
	}
	if strings.Count(logs, "enrollment refused") != 4 || strings.Count(logs, "totem enrolled") != 2 {
		t.Errorf("attempts not audited:\n%s", logs)
	}
}

// MaxAttempts wrong codes burn a totem's code: the right one is refused
// after, until ops issues a new one.
func TestWrongCodesBurnTheCode(t *testing.T) {
	r := start(t, broker.Options{EnrollPerSource: 100})
	ctx := ctxT(t)
	code, _, _ := r.reg.Enroll("t-1", time.Hour, time.Now())
	wrong := "2222-2222-2222"
	if code == wrong {
		t.Skip("the random code is the wrong one")
	}
	for i := range enroll.MaxAttempts {
		if _, _, err := r.client("t-1").Exchange(ctx, wrong); enroll.ReasonOf(err) != enroll.ReasonUnknown {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if _, _, err := r.client("t-1").Exchange(ctx, code); enroll.ReasonOf(err) != enroll.ReasonBurnt {
		t.Fatalf("the right code after %d wrong ones: %v", enroll.MaxAttempts, err)
	}
	code, _, _ = r.reg.Enroll("t-1", time.Hour, time.Now())
	if _, _, err := r.client("t-1").Exchange(ctx, code); err != nil {
		t.Fatalf("a new code: %v", err)
	}
}

// Bad input at the hub — oversized, malformed, a code from another
// alphabet or of another length — is refused with its reason, counted,
// and changes nothing: the totem's code still works afterwards.
func TestBadRequestsRefused(t *testing.T) {
	r := start(t, broker.Options{EnrollPerSource: 100})
	code, _, _ := r.reg.Enroll("t-1", time.Hour, time.Now())
	for _, tc := range []struct {
		name, payload, reason string
	}{
		{"oversized", `{"v":1,"totem":"t-1","code":"` + strings.Repeat("A", 2000) + `"}`, enroll.ReasonTooLarge},
		{"not json", `{"v":1,`, enroll.ReasonMalformed},
		{"unknown field", `{"v":1,"totem":"t-1","code":"2345-6789-ABCD","x":1}`, enroll.ReasonMalformed},
		{"bad totem id", `{"v":1,"totem":"t/1","code":"2345-6789-ABCD"}`, enroll.ReasonMalformed},
		{"another alphabet", `{"v":1,"totem":"t-1","code":"O0I1-2345-6789"}`, enroll.ReasonAlphabet},
		{"too short", `{"v":1,"totem":"t-1","code":"2345-6789"}`, enroll.ReasonLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rid := strings.Repeat("A", 16) + strings.ToUpper(strings.ReplaceAll(tc.name, " ", ""))[:4]
			c, msgs, rc := dial(t, r.srv.Addr(), enroll.ClientID(rid), enroll.Username, enroll.Password, nil)
			if rc != 0 {
				t.Fatalf("enroll user refused: 0x%02X", rc)
			}
			ctx := ctxT(t)
			if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: enroll.ReplyTopic(rid), QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Publish(ctx, &paho.Publish{Topic: enroll.RequestTopic(rid), QoS: 1, Payload: []byte(tc.payload)}); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-msgs:
				var rep enroll.Reply
				if err := protocol.DecodeEnvelope(p.Payload, &rep, func() int { return rep.V }); err != nil || rep.OK || rep.Reason != tc.reason {
					t.Fatalf("reply %s (%v), want reason %s", p.Payload, err, tc.reason)
				}
			case <-ctx.Done():
				t.Fatal("no reply")
			}
		})
	}
	s := r.hub.EnrollStats()
	if s.OK != 0 || s.Refused[enroll.ReasonTooLarge] != 1 || s.Refused[enroll.ReasonMalformed] != 3 ||
		s.Refused[enroll.ReasonAlphabet] != 1 || s.Refused[enroll.ReasonLength] != 1 {
		t.Errorf("stats %+v", s)
	}
	if e, _, _ := r.reg.EnrollmentOf("t-1"); e.Failures != 0 || !e.Used.IsZero() {
		t.Errorf("bad input touched the enrollment: %+v", e)
	}
	if _, _, err := r.client("t-1").Exchange(ctxT(t), code); err != nil {
		t.Fatalf("the code after bad input: %v", err)
	}
	// The client refuses another alphabet before sending anything.
	if _, _, err := r.client("t-1").Exchange(ctxT(t), "O0I1-2345-6789"); enroll.ReasonOf(err) != enroll.ReasonAlphabet ||
		strings.Contains(err.Error(), "O0I1") {
		t.Errorf("client side: %v", err)
	}
}

// The enroll user can do nothing but its one request and its reply: no
// other topic, no second request, no Will, a client id with a request
// id, and few connections per source.
func TestEnrollUserIsMinimal(t *testing.T) {
	r := start(t, broker.Options{EnrollPerSource: 2})
	rid := "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	if _, _, rc := dial(t, r.srv.Addr(), "enroll-x", enroll.Username, enroll.Password, nil); rc != 0x85 {
		t.Errorf("client id without a request id: 0x%02X", rc)
	}
	if _, _, rc := dial(t, r.srv.Addr(), enroll.ClientID(rid), enroll.Username, enroll.Password, &paho.WillMessage{Topic: enroll.RequestTopic(rid), QoS: 1, Payload: []byte("{}")}); rc != 0x87 {
		t.Errorf("a Will: 0x%02X", rc)
	}
	c, _, rc := dial(t, r.srv.Addr(), enroll.ClientID(rid), enroll.Username, enroll.Password, nil)
	if rc != 0 {
		t.Fatalf("enroll user: 0x%02X", rc)
	}
	ctx := ctxT(t)
	for _, filter := range []string{"#", "totem/v1/+/state", enroll.RequestFilter, enroll.ReplyTopic("BBBBBBBBBBBBBBBBBBBB"), protocol.HubCmdTopic} {
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if err == nil || sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x87 {
			t.Errorf("subscribe %s: %+v %v", filter, sa, err)
		}
	}
	for _, topic := range []string{"totem/v1/t-1/op", protocol.HubCmdTopic, enroll.RequestTopic("BBBBBBBBBBBBBBBBBBBB")} {
		pa, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("{}")})
		if err == nil && pa.ReasonCode < 0x80 {
			t.Errorf("publish %s accepted", topic)
		}
	}
	for i, want := range []bool{true, false} {
		pa, err := c.Publish(ctx, &paho.Publish{Topic: enroll.RequestTopic(rid), QoS: 1, Payload: []byte("{}")})
		if got := err == nil && pa.ReasonCode < 0x80; got != want {
			t.Errorf("request %d on its own topic: accepted %v, want %v (%+v %v)", i+1, got, want, pa, err)
		}
	}
	// 2 a minute from this address (the refusals above took none).
	if _, _, rc := dial(t, r.srv.Addr(), enroll.ClientID(rid+"2"), enroll.Username, enroll.Password, nil); rc != 0 {
		t.Errorf("second connection: 0x%02X", rc)
	}
	if _, _, rc := dial(t, r.srv.Addr(), enroll.ClientID(rid+"3"), enroll.Username, enroll.Password, nil); rc != 0x9F {
		t.Errorf("third connection: 0x%02X, want 0x9F", rc)
	}
	if s := r.srv.Stats(); s.EnrollRate != 1 {
		t.Errorf("stats %s", s)
	}
}
