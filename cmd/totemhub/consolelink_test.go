package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
)

// The console link carries a signed command through the embedded broker,
// within the console user's ACL, to the totem's cmd topic and brings its
// reply back by correlation data.
func TestConsoleLinkRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := config.DefaultTotemhub()
	cfg.Fleet.CredentialsDir = t.TempDir()
	c := synctest.Start(t, synctest.Options{Users: []synctest.User{{Name: "console", Role: creds.RoleConsole}, {Name: "t-link", Role: creds.RoleTotem}}})
	srv, console, totem := c.Broker, c.Creds("console"), c.Creds("t-link")
	if err := creds.Save(filepath.Join(cfg.Fleet.CredentialsDir, "console.json"), console); err != nil {
		t.Fatal(err)
	}
	key, _ := cmdsig.Generate("console", cmdsig.Ops)
	if err := cmdsig.SavePrivate(filepath.Join(cfg.Fleet.CredentialsDir, "console.key"), key); err != nil {
		t.Fatal(err)
	}

	// The totem: answers every command with its name.
	u, _ := url.Parse(srv.URL())
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	var tc *paho.Client
	tc = paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: "t-link",
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			cmd, err := protocol.DecodeCommand(p.Payload)
			if err != nil || p.Properties == nil {
				return true, nil
			}
			b, _ := protocol.Marshal(protocol.Reply{V: protocol.Version, ID: cmd.ID, OK: true, Data: []byte(`"` + cmd.Name + ` as ` + cmd.Role + `"`)})
			go tc.Publish(ctx, &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: 1, Payload: b,
				Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}})
			return true, nil
		}}})
	defer tc.Disconnect(&paho.Disconnect{})
	if _, err := tc.Connect(ctx, &paho.Connect{KeepAlive: 30, CleanStart: true, ClientID: "t-link", Username: totem.Username,
		Password: []byte(totem.Password), UsernameFlag: true, PasswordFlag: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.Topic("t-link", protocol.LeafCmd), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	link, k, err := startConsoleLink(ctx, cfg, srv.URL(), nil, slog.New(slog.DiscardHandler))
	if err != nil || link == nil || k == nil {
		t.Fatalf("link: %v", err)
	}
	defer link.Close()
	for i, name := range []string{"resync", "resend"} {
		cmd := &protocol.Command{V: protocol.Version, ID: "0123456789abcdef0" + string(rune('a'+i)), Name: name, Args: map[string]string{"id": "x"}}
		if err := cmdsig.Sign(*k, cmd, "t-link", cmdsig.Technician, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		r, err := link.Command(ctx, cmd)
		if err != nil || !r.OK || string(r.Data) != `"`+name+` as technician"` {
			t.Fatalf("%s: %+v %v", name, r, err)
		}
	}
	// A totem that does not answer: the caller's deadline ends the wait.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	cmd := &protocol.Command{V: protocol.Version, ID: "0123456789abcdef0z", Name: "resync"}
	cmdsig.Sign(*k, cmd, "t-absent", cmdsig.Technician, time.Now(), time.Minute)
	if _, err := link.Command(short, cmd); err == nil {
		t.Fatal("no error for a totem that never answers")
	}
}
