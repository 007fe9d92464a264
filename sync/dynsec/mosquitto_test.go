package dynsec

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// mosq is a private Debian mosquitto with the dynamic-security plugin, on
// a free loopback port, in the test's temporary directory.
type mosq struct {
	addr, adminPass, log string
	cmd                  *exec.Cmd
	exited               chan struct{}
}

const adminUser = "dynsec-admin"

// pluginPath finds the plugin Debian's mosquitto ships.
func pluginPath() string {
	m, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	m2, _ := filepath.Glob("/usr/lib/mosquitto_dynamic_security.so")
	if m = append(m, m2...); len(m) > 0 {
		return m[0]
	}
	return ""
}

func startMosquitto(t *testing.T) *mosq { return startMosquittoTB(t) }

func startMosquittoTB(t testing.TB) *mosq {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err == nil {
		_, err = exec.LookPath("mosquitto_ctrl")
	}
	plugin := pluginPath()
	if err != nil || plugin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto with its dynamic-security plugin is not installed (.ci/run installs it)")
		}
		t.Skip("mosquitto or its dynamic-security plugin not installed (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	m := &mosq{adminPass: randomHex(12), log: filepath.Join(dir, "mosquitto.log")}
	conf := filepath.Join(dir, "dynsec.json")
	if out, err := exec.Command("mosquitto_ctrl", "dynsec", "init", conf, adminUser, m.adminPass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_ctrl dynsec init: %v %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(m.addr)
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npersistence false\nmax_packet_size 262144\n"+
		"set_tcp_nodelay true\nplugin %s\nplugin_opt_config_file %s\nlog_dest file %s\n", port, plugin, conf, m.log)
	if os.Getuid() == 0 {
		text += "user root\n" // as root mosquitto drops to its own user, which cannot read the temp dir
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, "-c", path)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(m.stop)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", m.addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(m.log)
			t.Fatalf("mosquitto did not listen on %s: %s", m.addr, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

func (m *mosq) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

func (m *mosq) url() string { return "mqtt://" + m.addr }

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
