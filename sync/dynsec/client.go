// Package dynsec drives mosquitto's dynamic-security plugin for a hub on an
// external broker: the fleet's broker users (totems, consoles, hubs and the
// enroll user) live in the hub's registry (sync/broker), and the plugin is
// told of every change over MQTT, on $CONTROL/dynamic-security/v1, with the
// credentials of a dynsec admin client (mosquitto_ctrl dynsec init).
//
// Client sends commands and waits for their correlated responses; roles.go
// mirrors sync/broker's ACL as dynsec roles; Mirror wraps the registry so
// provisioning, enrollment, rotation, lock and unlock reach mosquitto too;
// Sync brings the plugin in line with the registry (idempotent).
//
// mosquitto 2.0's plugin keeps one secret per client, hashes it itself
// (PBKDF2-SHA512) and takes it in clear only: the hub can hand it a secret
// only when it holds one in clear, at provisioning, enrollment and rotation.
package dynsec

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/pki"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// Topics of the plugin's control API.
const (
	ControlTopic  = "$CONTROL/dynamic-security/v1"
	ResponseTopic = ControlTopic + "/response"
)

// DefaultTimeout bounds one exchange with the plugin when Options.Timeout
// is zero.
const DefaultTimeout = 10 * time.Second

// Options are a Client's broker and admin credentials.
type Options struct {
	URL      string      // mqtt://host:port, or mqtts:// with TLS
	TLS      *tls.Config // for mqtts:// (pki.Client builds it)
	CAFile   string      // only named in errors
	Username string      // a client with the plugin's admin role
	Password string
	ClientID string        // "" = "totemhub-dynsec-" and a random suffix
	Timeout  time.Duration // per exchange; 0 = DefaultTimeout
}

// Command is one command of the control API: its name and arguments.
type Command map[string]any

// Response is the plugin's answer to one command.
type Response struct {
	Command string          `json:"command"`
	Error   string          `json:"error,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Corr    string          `json:"correlationData,omitempty"`
}

// ErrAdminRefused: the broker refused the admin client's login (a wrong
// user or password: retrying does not help).
var ErrAdminRefused = errors.New("dynsec: the broker refused the admin client")

// Error is a command the plugin refused, with its reason.
type Error struct {
	Command string
	Reason  string // the plugin's "error", e.g. "Client already exists"
}

func (e *Error) Error() string { return "dynsec: " + e.Command + ": " + e.Reason }

// Is reports whether err is the plugin's refusal with reason.
func Is(err error, reason string) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == reason
}

// The plugin's reasons the package looks at (mosquitto 2.0).
const (
	ReasonClientExists   = "Client already exists"
	ReasonRoleExists     = "Role already exists"
	ReasonClientNotFound = "Client not found"
	ReasonRoleNotFound   = "Role not found"
)

// Client is one connection to the broker as the dynsec admin. Commands
// are sent one exchange at a time; a connection that fails is dropped and
// the next exchange dials again. It is safe for concurrent use.
type Client struct {
	o Options

	mu sync.Mutex // one exchange at a time; guards cl
	cl *paho.Client

	xmu  sync.Mutex      // guards wait and corr, which received reads
	wait chan []Response // the current exchange's responses
	corr string          // the current exchange's correlation prefix
}

// New returns a Client; it connects at the first exchange.
func New(o Options) (*Client, error) {
	if o.Username == "" || o.Password == "" {
		return nil, errors.New("dynsec: an admin username and password are needed")
	}
	if _, err := url.Parse(o.URL); err != nil {
		return nil, fmt.Errorf("dynsec: broker url: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ClientID == "" {
		o.ClientID = "totemhub-dynsec-" + randomHex(4)
	}
	return &Client{o: o}, nil
}

// Close ends the connection, if any.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
	return nil
}

func (c *Client) drop() {
	if c.cl == nil {
		return
	}
	_ = c.cl.Disconnect(&paho.Disconnect{})
	<-c.cl.Done()
	c.cl = nil
}

// Do sends cmds in one control message and returns their responses, in
// order. It fails when the broker does not answer within the timeout, and
// with an *Error for the first command the plugin refused (the responses
// are returned all the same).
func (c *Client) Do(ctx context.Context, cmds ...Command) ([]Response, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	prefix := randomHex(8)
	out := make([]Command, len(cmds))
	for i, cmd := range cmds {
		m := make(Command, len(cmd)+1)
		for k, v := range cmd {
			m[k] = v
		}
		m["correlationData"] = fmt.Sprintf("%s-%d", prefix, i)
		out[i] = m
	}
	b, err := json.Marshal(map[string]any{"commands": out})
	if err != nil {
		return nil, fmt.Errorf("dynsec: %w", err)
	}
	wait := make(chan []Response, 1)
	c.setCurrent(wait, prefix)
	defer c.setCurrent(nil, "")
	// QoS 0: the response is the acknowledgement. At QoS 1 mosquitto
	// writes a PUBACK and then the response, and without
	// set_tcp_nodelay Nagle holds the second for the client's delayed
	// ACK: 40 ms an exchange (BenchmarkSync300: 55 s instead of 0.6 s).
	if _, err := c.cl.Publish(ctx, &paho.Publish{Topic: ControlTopic, QoS: 0, Payload: b}); err != nil {
		c.drop()
		return nil, fmt.Errorf("dynsec: send %s: %w", cmds[0]["command"], err)
	}
	var rs []Response
	select {
	case rs = <-wait:
	case <-ctx.Done():
		c.drop()
		return nil, fmt.Errorf("dynsec: no answer from the plugin to %s within %v (is mosquitto_dynamic_security loaded, and the admin client's role allowed $CONTROL?): %w",
			cmds[0]["command"], c.o.Timeout, ctx.Err())
	}
	// The plugin answers in order; index by correlation all the same.
	byCorr := make(map[string]Response, len(rs))
	for _, r := range rs {
		byCorr[r.Corr] = r
	}
	res := make([]Response, len(cmds))
	var first error
	for i, cmd := range cmds {
		r, ok := byCorr[fmt.Sprintf("%s-%d", prefix, i)]
		if !ok {
			return nil, fmt.Errorf("dynsec: no response to %v in the plugin's answer", cmd["command"])
		}
		res[i] = r
		if r.Error != "" && first == nil {
			first = &Error{Command: r.Command, Reason: r.Error}
		}
	}
	return res, first
}

// connect dials the broker if there is no live connection; called with mu.
func (c *Client) connect(ctx context.Context) error {
	if c.cl != nil {
		select {
		case <-c.cl.Done():
			c.cl = nil
		default:
			return nil
		}
	}
	u, err := url.Parse(c.o.URL)
	if err != nil {
		return fmt.Errorf("dynsec: broker url: %w", err)
	}
	conn, err := pki.Dial(ctx, u, c.o.TLS, c.o.CAFile)
	if err != nil {
		return fmt.Errorf("dynsec: %w", err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: c.o.Timeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.received}})
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: c.o.ClientID, KeepAlive: 30, CleanStart: true,
		Username: c.o.Username, UsernameFlag: true, Password: []byte(c.o.Password), PasswordFlag: true})
	if err != nil {
		conn.Close()
		if ca != nil {
			return fmt.Errorf("%w: %s (0x%02X %s)", ErrAdminRefused, c.o.Username, ca.ReasonCode, ca.Properties.ReasonString)
		}
		return fmt.Errorf("dynsec: connect: %w", err)
	}
	sa, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ResponseTopic, QoS: 1}}})
	if err == nil && (len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80) {
		err = fmt.Errorf("refused (%v): the admin client's role must allow %s", sa.Reasons, ResponseTopic)
	}
	if err != nil {
		_ = cl.Disconnect(&paho.Disconnect{})
		<-cl.Done()
		return fmt.Errorf("dynsec: subscribe: %w", err)
	}
	c.cl = cl
	return nil
}

// received hands a response message to the exchange waiting for it.
// Responses of an exchange that timed out are dropped by their
// correlation prefix.
func (c *Client) received(pr paho.PublishReceived) (bool, error) {
	if pr.Packet.Topic != ResponseTopic {
		return true, nil
	}
	var m struct {
		Responses []Response `json:"responses"`
	}
	if err := json.Unmarshal(pr.Packet.Payload, &m); err != nil || len(m.Responses) == 0 {
		return true, nil
	}
	// Called on paho's goroutine while Do holds mu: read the exchange
	// without mu, through the channel handed out under it.
	w, corr := c.current()
	if w == nil || len(m.Responses[0].Corr) < len(corr) || m.Responses[0].Corr[:len(corr)] != corr {
		return true, nil
	}
	select {
	case w <- m.Responses:
	default:
	}
	return true, nil
}

func (c *Client) setCurrent(w chan []Response, corr string) {
	c.xmu.Lock()
	c.wait, c.corr = w, corr
	c.xmu.Unlock()
}

func (c *Client) current() (chan []Response, string) {
	c.xmu.Lock()
	defer c.xmu.Unlock()
	return c.wait, c.corr
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
