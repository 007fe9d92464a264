package broker

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
)

// startTLS starts a broker with a plain and a TLS listener whose
// certificate a fresh CA issued for 127.0.0.1; it returns the CA file.
func startTLS(t *testing.T, opts Options) (*Server, creds.File, string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.LoadOrCreateCA(dir, "test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewServer(pki.CASource(dir, ca, []string{"127.0.0.1"}), now)
	if err != nil {
		t.Fatal(err)
	}
	opts.TLSListen, opts.TLS = "127.0.0.1:0", cert.Config()
	srv, a := startLimited(t, opts)
	return srv, a, filepath.Join(dir, pki.CACertFile)
}

// dialTLS connects an MQTT client over TLS with the client configuration
// every program builds (pki.Client).
func dialTLS(t *testing.T, addr, caFile, user, pass string) (*paho.Client, error) {
	t.Helper()
	cfg, err := pki.Client{CAFile: caFile}.Config("mqtts://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 5 * time.Second})
	if _, err := c.Connect(ctxT(t), &paho.Connect{ClientID: user, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true}); err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

// A client that trusts the hub's CA connects over TLS and works as over
// plain TCP; one that trusts another CA, or names the broker by a name
// its certificate lacks, fails with a message naming the CA file and the
// broker; plain MQTT on the TLS port is refused and counted.
func TestTLSListener(t *testing.T) {
	srv, a, caFile := startTLS(t, Options{})
	if srv.TLSAddr() == "" || srv.TLSURL() != "mqtts://"+srv.TLSAddr() {
		t.Fatalf("TLS address %q, URL %q", srv.TLSAddr(), srv.TLSURL())
	}
	c, err := dialTLS(t, srv.TLSAddr(), caFile, "A", a.Password)
	if err != nil {
		t.Fatalf("TLS client with the right CA: %v", err)
	}
	if _, err := c.Publish(ctxT(t), &paho.Publish{Topic: protocol.Topic("A", protocol.LeafEvent), QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}

	other := t.TempDir()
	if _, err := pki.LoadOrCreateCA(other, "another CA", time.Now()); err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(other, pki.CACertFile)
	_, err = dialTLS(t, srv.TLSAddr(), wrongCA, "A", a.Password)
	if err == nil {
		t.Fatal("a client trusting another CA connected")
	}
	msg := pki.Explain(err, srv.TLSAddr(), wrongCA).Error()
	for _, want := range []string{wrongCA, srv.TLSAddr(), "not signed by"} {
		if !strings.Contains(msg, want) {
			t.Errorf("wrong CA: message %q lacks %q", msg, want)
		}
	}

	// The right CA, the wrong name: the server name is checked.
	cfg, _ := pki.Client{CAFile: caFile}.Config("mqtts://broker.example:8883")
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.TLSAddr(), cfg)
	if err == nil {
		t.Fatal("a certificate for 127.0.0.1 accepted for broker.example")
	}
	if msg := pki.Explain(err, "broker.example:8883", caFile).Error(); !strings.Contains(msg, "not for that name") || !strings.Contains(msg, "broker.example:8883") {
		t.Errorf("wrong name: message %q", msg)
	}

	// Plain MQTT on the TLS port.
	raw, err := net.Dial("tcp", srv.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte{0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 30, 0, 0, 1, 'A', 0, 0, 0, 0, 0, 0})
	if !closedByPeer(raw) {
		t.Error("plain MQTT on the TLS port left open")
	}
	for end := time.Now().Add(5 * time.Second); srv.Stats().TLSFailures < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("TLSFailures %d, want 2 (another CA, plain MQTT)", srv.Stats().TLSFailures)
		}
	}
}

// A TLS handshake that never completes is closed at the connect deadline
// and counted as a connect timeout: silent, or stalled mid-ClientHello.
func TestTLSHandshakeDeadline(t *testing.T) {
	srv, _, _ := startTLS(t, Options{ConnectTimeout: 200 * time.Millisecond})
	// A TLS record header announcing a 512-byte handshake, 3 bytes of it sent.
	timedOut(t, srv, srv.TLSAddr(), []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01}, "TLS socket")
	if srv.Connections() != 0 {
		t.Errorf("%d connections still counted", srv.Connections())
	}
}

// Both listeners share max_connections: with the cap held by plain
// sockets, a TLS one is closed at accept, before any handshake.
func TestTLSSharesConnectionCap(t *testing.T) {
	const max = 3
	srv, _, _ := startTLS(t, Options{MaxConnections: max, ConnectTimeout: time.Minute})
	for range max {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	overCap(t, srv, srv.TLSAddr(), max, "TLS connection")
}

// A TLS listener needs its configuration.
func TestTLSListenWithoutConfig(t *testing.T) {
	if _, err := Start(Options{TLSListen: "127.0.0.1:0", Auth: NewUsers(nil)}); err == nil {
		t.Fatal("started a TLS listener without a certificate")
	}
}
