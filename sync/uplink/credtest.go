package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// "Test credenziali" (seed 003): after any change of credentials, check
// that they work on the path they are used on — connect, authenticate,
// the ACL of the totem's own topics, the expiry — and say so plainly.
// `totemd credentials test` runs it from a fresh connection
// (TestCredentials), `totemctl cmd TOTEM test-credentials` on the totem's
// live one (the command answered by the uplink itself).

// TopicCheck is one subscription the test made.
type TopicCheck struct {
	Topic   string `json:"topic"`
	Granted bool   `json:"granted"`
	Code    int    `json:"code"` // SUBACK reason code
}

// CredentialsReport is the test's result.
type CredentialsReport struct {
	Totem     string       `json:"totem"`
	Broker    string       `json:"broker"`
	Connected bool         `json:"connected"`
	Refusal   string       `json:"refusal,omitempty"` // why it could not connect
	Own       []TopicCheck `json:"own,omitempty"`     // must be granted
	Foreign   *TopicCheck  `json:"foreign,omitempty"` // another totem's commands: must be refused
	Expires   time.Time    `json:"expires,omitzero"`
	RotateAt  time.Time    `json:"rotate_at,omitzero"`
	OK        bool         `json:"ok"`
	Verdict   string       `json:"verdict"`
}

// ownTopics are the totem's subscriptions the ACL must grant.
func ownTopics(t string) []string {
	return []string{protocol.Topic(t, protocol.LeafResult), protocol.Topic(t, protocol.LeafCmd),
		protocol.Topic(t, protocol.LeafPolicy), protocol.Topic(t, protocol.LeafLedger), protocol.Topic(t, protocol.LeafRotated)}
}

// foreignTopic is a topic no totem but probeTotem may read.
const probeTotem = "acl-probe"

type subscriber func(ctx context.Context, s *paho.Subscribe) (*paho.Suback, error)

// checkACL subscribes, in one SUBSCRIBE, to the own topics and to another
// totem's commands; retained messages are not sent again for a topic the
// session had already (RetainHandling 1). Code -1: no answer.
func checkACL(ctx context.Context, sub subscriber, r *CredentialsReport) {
	topics := append(ownTopics(r.Totem), protocol.Topic(probeTotem, protocol.LeafCmd))
	s := &paho.Subscribe{}
	for _, t := range topics {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: t, QoS: 1, RetainHandling: 1})
	}
	sa, _ := sub(ctx, s) // a refusal of some is an error too: the reasons say which
	checks := make([]TopicCheck, len(topics))
	for i, t := range topics {
		checks[i] = TopicCheck{Topic: t, Code: -1}
		if sa != nil && len(sa.Reasons) == len(topics) {
			checks[i].Code, checks[i].Granted = int(sa.Reasons[i]), sa.Reasons[i] < 0x80
		}
	}
	r.Own, r.Foreign = checks[:len(topics)-1], &checks[len(topics)-1]
}

// judge fills OK and Verdict.
func (r *CredentialsReport) judge(now time.Time) {
	var bad []string
	for _, c := range r.Own {
		if !c.Granted {
			bad = append(bad, c.Topic)
		}
	}
	switch {
	case !r.Connected:
		r.Verdict = "KO: the broker did not accept the credentials: " + r.Refusal
	case r.Foreign != nil && r.Foreign.Code == -1:
		r.Verdict = "KO: connected, but the broker did not answer the subscriptions"
	case len(bad) > 0:
		r.Verdict = fmt.Sprintf("KO: connected, but the ACL refuses the totem's own topics %s", strings.Join(bad, ", "))
	case r.Foreign == nil || r.Foreign.Granted:
		r.Verdict = "KO: connected, but the ACL lets this totem read another totem's commands"
	case !r.Expires.IsZero() && !now.Before(r.Expires):
		r.Verdict = "KO: the credentials expired at " + r.Expires.Format(time.RFC3339)
	default:
		r.OK = true
		r.Verdict = fmt.Sprintf("OK: credentials of %s accepted by %s, ACL of its %d topics granted, another totem's refused", r.Totem, r.Broker, len(r.Own))
		if !r.Expires.IsZero() {
			r.Verdict += fmt.Sprintf("; they expire %s (in %d days), rotated from %s",
				r.Expires.Local().Format("2006-01-02"), int(r.Expires.Sub(now).Hours()/24), r.RotateAt.Local().Format("2006-01-02"))
		} else {
			r.Verdict += "; they do not expire"
		}
	}
}

// TestOptions are TestCredentials'.
type TestOptions struct {
	URL    string
	TLS    *tls.Config
	CAFile string // only named in messages
	Creds  creds.File
}

// TestCredentials connects with f over a fresh connection and checks it.
// The client id is the totem's name: a running link is taken over and
// connects again at once.
func TestCredentials(ctx context.Context, o TestOptions) (r CredentialsReport) {
	f := o.Creds
	// The username may be the totem's second one (a rotation on
	// mosquitto's dynamic security): the client id and topics are the
	// totem's.
	totem, _ := protocol.UsernameTotem(f.Username)
	r = CredentialsReport{Totem: totem, Expires: f.Expires, RotateAt: f.RotateAt}
	defer func() { r.judge(time.Now()) }()
	u, err := url.Parse(o.URL)
	if err != nil {
		r.Refusal = "broker url: " + err.Error()
		return r
	}
	r.Broker = u.Host
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	switch u.Scheme {
	case "mqtts", "ssl", "tls":
		conn, err = (&tls.Dialer{NetDialer: &d, Config: o.TLS}).DialContext(ctx, "tcp", u.Host)
	default:
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		r.Refusal = pki.Explain(err, u.Host, o.CAFile).Error()
		return r
	}
	// Thread safe: paho writes a packet in several Writes (net.Buffers),
	// which a tls.Conn does not keep together, and its pinger writes a
	// PINGREQ from another goroutine at once after CONNECT.
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 30 * time.Second})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: totem, KeepAlive: 30, CleanStart: true,
		Username: f.Username, UsernameFlag: true, Password: []byte(f.Password), PasswordFlag: true})
	if err != nil {
		conn.Close()
		if ca != nil {
			reason := reasonText(ca.ReasonCode)
			if ca.Properties != nil && ca.ReasonCode == 0x86 && strings.HasPrefix(ca.Properties.ReasonString, "expired") {
				reason = expiredText
			}
			r.Refusal = fmt.Sprintf("0x%02X %s", ca.ReasonCode, reason)
		} else {
			r.Refusal = err.Error()
		}
		return r
	}
	defer func() {
		_ = c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	}()
	r.Connected = true
	checkACL(ctx, c.Subscribe, &r)
	return r
}

// testCredentials answers the test-credentials command on the live
// connection: it is up (the credentials authenticated), and the ACL and
// the expiry are checked as TestCredentials does.
func (u *Uplink) testCredentials(ctx context.Context, cmd *protocol.Command) *protocol.Reply {
	u.mu.Lock()
	cm := u.cm
	u.mu.Unlock()
	cur := u.rot.current()
	r := CredentialsReport{Totem: u.o.Totem, Expires: cur.Expires, RotateAt: cur.RotateAt, Connected: u.connected.Load()}
	if srv, err := url.Parse(u.o.URL); err == nil {
		r.Broker = srv.Host
	}
	if r.Connected && cm != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		checkACL(cctx, cmSubscriber(cm), &r)
		cancel()
	} else {
		r.Refusal = "not connected"
	}
	r.judge(time.Now())
	b, err := json.Marshal(r)
	if err != nil {
		return &protocol.Reply{ID: cmd.ID, Error: err.Error()}
	}
	return &protocol.Reply{ID: cmd.ID, OK: true, Data: b}
}

func cmSubscriber(cm *autopaho.ConnectionManager) subscriber {
	return func(ctx context.Context, s *paho.Subscribe) (*paho.Suback, error) { return cm.Subscribe(ctx, s) }
}
