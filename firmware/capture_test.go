package firmware_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// relay is a TCP relay on the loopback that records every byte it
// forwards, both ways: what a capture on the lobby network would see.
type relay struct {
	ln   net.Listener
	mu   sync.Mutex
	seen bytes.Buffer
}

func startRelay(t *testing.T, to string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	var conns []net.Conn
	var cmu sync.Mutex
	wait := goset.Accept(ln, func(c net.Conn) {
		up, err := net.Dial("tcp", to)
		if err != nil {
			c.Close()
			return
		}
		cmu.Lock()
		conns = append(conns, c, up)
		cmu.Unlock()
		sent := make(chan struct{})
		go func() { defer close(sent); r.pipe(up, c) }()
		r.pipe(c, up)
		<-sent
	})
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		wait()
	})
	return r
}

// pipe copies src to dst, recording every byte, until either fails.
func (r *relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			r.seen.Write(buf[:n])
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			dst.Close()
			return
		}
	}
}

func (r *relay) captured() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.seen.Bytes())
}

// capture runs a citizen's consent and a console's session through a relay
// to the broker, over TLS or plain, and returns what the relay saw and
// what must not be seen in it.
func capture(t *testing.T, useTLS bool) (seen []byte, secrets map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	_, log := newLog()
	opts := broker.Options{Listen: "127.0.0.1:0"}
	var clientTLS *tls.Config
	if useTLS {
		_, srv := synctest.ServerCert(t, filepath.Join(dir, "hub"), "test CA", time.Now())
		opts.TLSListen, opts.TLS = "127.0.0.1:0", srv.Config()
		var err error
		if clientTLS, err = (pki.Client{CAFile: filepath.Join(dir, "hub", pki.CACertFile)}).Config("mqtts://127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	c := startBrokerOpts(t, dir, log, opts)
	c.startHub() // on the plain loopback listener, as totemhub's ingest
	target, scheme := c.Addr(), "mqtt://"
	if useTLS {
		target, scheme = c.Broker.TLSAddr(), "mqtts://"
	}
	r := startRelay(t, target)
	brokerURL := scheme + r.ln.Addr().String()

	console, err := c.Registry.Provision("console", creds.RoleConsole, filepath.Join(dir, "creds", "console.json"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(brokerURL)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, TlsCfg: clientTLS,
		KeepAlive: 30, ConnectUsername: console.Username, ConnectPassword: []byte(console.Password),
		ClientConfig: paho.ClientConfig{ClientID: "console-cap"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.Root + "/+/" + protocol.LeafState, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	tt := startTotemTLS(t, filepath.Join(dir, "totem"), brokerURL, c.totem, log, clientTLS)
	tt.consentFlow(ctx)
	if _, err := tt.panel.WaitFor(ctx, "Accolta. Protocollo:"); err != nil {
		t.Fatal(err)
	}
	tt.stop()
	cm.Disconnect(ctx)
	card := testCard()
	return r.captured(), map[string]string{"totem password": c.totem.Password, "console password": console.Password,
		"CF": card.Info.CF, "surname": card.Info.Surname, "name": card.Info.Name, "card serial": card.Info.Serial}
}

// Over TLS a capture on the network between a totem or a console and the
// broker holds no password, no CF and no name (issue 14). The same run in
// plain TCP shows that the capture would have found them.
func TestCaptureHoldsNoSecretsOverTLS(t *testing.T) {
	seen, secrets := capture(t, true)
	if len(seen) < 1000 {
		t.Fatalf("relay saw only %d bytes: the check below would be vacuous", len(seen))
	}
	for what, s := range secrets {
		if bytes.Contains(seen, []byte(s)) {
			t.Errorf("%s in clear in the capture", what)
		}
	}
	if !bytes.HasPrefix(seen, []byte{0x16, 0x03}) {
		t.Errorf("capture does not start with a TLS handshake: % x", seen[:8])
	}

	plain, secrets := capture(t, false)
	for _, what := range []string{"totem password", "console password", "CF"} {
		if !bytes.Contains(plain, []byte(secrets[what])) {
			t.Errorf("plain TCP capture lacks the %s: the relay does not see what it should", what)
		}
	}
}
