package dynsec

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// mosq is a private Debian mosquitto with the dynamic-security plugin, on
// a free loopback port, in the test's temporary directory.
type mosq struct {
	*synctest.Mosquitto
	addr, adminPass string
}

const adminUser = synctest.MosquittoAdmin

func startMosquitto(t *testing.T) *mosq { return startMosquittoTB(t) }

func startMosquittoTB(t testing.TB) *mosq {
	t.Helper()
	m := synctest.StartMosquitto(t)
	return &mosq{Mosquitto: m, addr: m.Addr, adminPass: m.AdminPassword}
}

func (m *mosq) url() string { return m.URL() }

func (m *mosq) admin(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{URL: m.url(), Username: adminUser, Password: m.adminPass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// conn is a test client of the broker.
type conn struct {
	t  *testing.T
	cl *paho.Client
	rx chan *paho.Publish
}

// login connects as username with password and client id; it returns the
// CONNACK's reason code (0 = accepted) and the connection when accepted.
func (m *mosq) login(t *testing.T, clientID, username, password string) (byte, *conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", m.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &conn{t: t, rx: make(chan *paho.Publish, 16)}
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(nc), PacketTimeout: 5 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case c.rx <- pr.Packet:
			default:
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil {
		nc.Close()
		if ca == nil {
			t.Fatalf("connect %s: %v", username, err)
		}
		return ca.ReasonCode, nil
	}
	c.cl = cl
	t.Cleanup(c.close)
	return 0, c
}

func (c *conn) close() {
	if c.cl == nil {
		return
	}
	_ = c.cl.Disconnect(&paho.Disconnect{})
	<-c.cl.Done()
	c.cl = nil
}

// subscribe returns the SUBACK's reason code for filter.
func (c *conn) subscribe(filter string) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil && sa == nil {
		c.t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

// publish returns the PUBACK's reason code for a QoS 1 publish on topic.
func (c *conn) publish(topic string) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.cl.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
	if err != nil && r == nil {
		c.t.Fatalf("publish %s: %v", topic, err)
	}
	return r.ReasonCode
}

// alive reports whether the connection is still up a moment later.
func (c *conn) alive() bool {
	select {
	case <-c.cl.Done():
		return false
	case <-time.After(300 * time.Millisecond):
		return true
	}
}
