package enroll

import (
	"context"
	"crypto/rand"
	"crypto/tls"
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
	conn, err := c.dial(ctx, u)
	if err != nil {
		return creds.File{}, time.Time{}, err
	}
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
			return creds.File{}, time.Time{}, errors.New("enroll: the hub refused: too many enrollment attempts, try again in a few minutes")
		}
		if ca != nil {
			return creds.File{}, time.Time{}, fmt.Errorf("enroll: the broker refused the enrollment connection (0x%02X): does this hub enroll totems?", ca.ReasonCode)
		}
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: connect: %w", err)
	}
	defer func() {
		_ = cl.Disconnect(&paho.Disconnect{})
		<-cl.Done()
	}()
	if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ReplyTopic(rid), QoS: 1}}}); err != nil {
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: subscribe: %w", err)
	}
	b, _ := json.Marshal(Request{V: protocol.Version, Totem: c.Totem, Code: norm})
	if _, err := cl.Publish(ctx, &paho.Publish{Topic: RequestTopic(rid), QoS: 1, Payload: b}); err != nil {
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: publish: %w", err)
	}
	var p *paho.Publish
	select {
	case <-ctx.Done():
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: no answer from the hub (busy, or it does not enroll totems): %w", ctx.Err())
	case p = <-replies:
	}
	var r Reply
	if err := protocol.DecodeEnvelope(p.Payload, &r, func() int { return r.V }); err != nil {
		return creds.File{}, time.Time{}, fmt.Errorf("enroll: the hub's reply: %w", err)
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

func (c Client) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	switch u.Scheme {
	case "mqtt", "tcp":
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		return conn, nil
	case "mqtts", "ssl", "tls":
		td := tls.Dialer{NetDialer: &d, Config: c.TLS}
		conn, err := td.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("enroll: %w", pki.Explain(err, u.Host, c.CAFile))
		}
		return conn, nil
	}
	return nil, fmt.Errorf("enroll: broker url scheme %q", u.Scheme)
}

// randomID is a request id: 26 characters of base32, 128 bits.
func randomID() string { return rand.Text() }
