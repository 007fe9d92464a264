package enroll

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// Client is the totem's side of the exchange.
type Client struct {
	URL    string      // the broker, mqtts:// (or mqtt:// on the loopback)
	TLS    *tls.Config // for mqtts:// (pki.Client builds it)
	CAFile string      // only named in errors
	Totem  string
}

// Exchange sends the code and returns the totem's credentials and their
// expiry. A refusal is an *Error with the hub's reason. Nothing is
// written: the caller saves the credentials (creds.Save, atomically).
func (c Client) Exchange(ctx context.Context, code string) (creds.File, time.Time, error) {
	norm, err := ParseCode(code)
	if err != nil {
		return creds.File{}, time.Time{}, err
	}
	if !protocol.ValidTotemID(c.Totem) {
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: invalid totem id")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: broker url: %w", err)
	}
	conn, err := pki.Dial(ctx, u, c.TLS, c.CAFile)
	if err != nil {
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: %w", err)
	}
	r, err := c.request(ctx, conn, Request{V: protocol.Version, Totem: c.Totem, Code: norm})
	if err != nil {
		return creds.File{}, time.Time{}, err
	}
	if !r.OK {
		return creds.File{}, time.Time{}, &Error{Reason: r.Reason, Msg: "the hub refused the code: " + r.Error}
	}
	f := r.Credentials
	if f == nil || f.Username != c.Totem || f.Role != creds.RoleTotem || f.Password == "" {
		return creds.File{}, time.Time{}, errors.New("enroll: the hub's reply holds no credentials for this totem")
	}
	return *f, r.Expires, nil
}

// FetchCA is the step before Exchange for a totem that has no CA file
// yet (ca.go): over TLS that verifies nothing yet (c.TLS's client
// certificate and server name are kept, its roots ignored), it sends the
// totem's id and a fresh nonce, never the code, and returns the hub's CA
// certificate (PEM) once the MAC of the answer checks against the code
// and the chain this connection presented verifies against that CA for
// the broker's name. A code that does not match, or a broker that is not
// the hub, is an *Error with ReasonMismatch. Nothing is written: the
// caller saves the CA, then calls Exchange with a configuration that
// trusts it.
func (c Client) FetchCA(ctx context.Context, code string) ([]byte, error) {
	norm, err := ParseCode(code)
	if err != nil {
		return nil, err
	}
	if !protocol.ValidTotemID(c.Totem) {
		return nil, fmt.Errorf("enroll: invalid totem id")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("enroll: broker url: %w", err)
	}
	if !pki.TLSScheme(c.URL) {
		return nil, fmt.Errorf("enroll: %s is not a TLS URL: there is no CA to fetch", u.Redacted())
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if c.TLS != nil {
		cfg = c.TLS.Clone()
		cfg.RootCAs = nil
	}
	serverName := cfg.ServerName
	if serverName == "" {
		serverName = u.Hostname()
	}
	// Verified below, against the CA the answer proves, before anything
	// is trusted or written; the code never crosses this connection.
	var chain []*x509.Certificate
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		chain = cs.PeerCertificates
		return nil
	}
	conn, err := pki.Dial(ctx, u, cfg, c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	nonce := make([]byte, NonceLen)
	if _, err := rand.Read(nonce); err != nil {
		conn.Close()
		return nil, fmt.Errorf("enroll: %w", err)
	}
	r, err := c.request(ctx, conn, Request{V: protocol.Version, Totem: c.Totem, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	if !r.OK {
		return nil, &Error{Reason: r.Reason, Msg: "the hub did not hand out its CA: " + r.Error}
	}
	return checkCA(r, c.Totem, norm, nonce, chain, serverName)
}

// request makes one request as the enroll user over conn, which it
// closes, and returns the hub's reply.
func (c Client) request(ctx context.Context, conn net.Conn, req Request) (Reply, error) {
	rid := randomID()
	replies := make(chan *paho.Publish, 1)
	// Thread safe: paho writes a packet in several Writes (net.Buffers),
	// which a tls.Conn does not keep together, and its pinger writes a
	// PINGREQ from another goroutine at once after CONNECT.
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 10 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if pr.Packet.Topic == ReplyTopic(rid) {
					select {
					case replies <- pr.Packet:
					default:
					}
				}
				return true, nil
			}}})
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: ClientID(rid), KeepAlive: 30, CleanStart: true,
		Username: Username, UsernameFlag: true, Password: []byte(Password), PasswordFlag: true})
	if err != nil {
		conn.Close()
		if ca != nil && ca.ReasonCode == 0x9F {
			return Reply{}, errors.New("enroll: the hub refused: too many enrollment attempts, try again in a few minutes")
		}
		if ca != nil {
			return Reply{}, fmt.Errorf("enroll: the broker refused the enrollment connection (0x%02X): does this hub enroll totems?", ca.ReasonCode)
		}
		return Reply{}, fmt.Errorf("enroll: connect: %w", err)
	}
	defer func() {
		_ = cl.Disconnect(&paho.Disconnect{})
		<-cl.Done()
	}()
	if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ReplyTopic(rid), QoS: 1}}}); err != nil {
		return Reply{}, fmt.Errorf("enroll: subscribe: %w", err)
	}
	b, _ := json.Marshal(req)
	if _, err := cl.Publish(ctx, &paho.Publish{Topic: RequestTopic(rid), QoS: 1, Payload: b}); err != nil {
		return Reply{}, fmt.Errorf("enroll: publish: %w", err)
	}
	var p *paho.Publish
	select {
	case <-ctx.Done():
		return Reply{}, fmt.Errorf("enroll: no answer from the hub (busy, or it does not enroll totems): %w", ctx.Err())
	case p = <-replies:
	}
	var r Reply
	if err := protocol.DecodeEnvelope(p.Payload, &r, func() int { return r.V }); err != nil {
		return Reply{}, fmt.Errorf("enroll: the hub's reply: %w", err)
	}
	return r, nil
}

// randomID is a request id: 26 characters of base32, 128 bits.
func randomID() string { return rand.Text() }
