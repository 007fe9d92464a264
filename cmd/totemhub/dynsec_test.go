package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
)

// dynsecMosquitto starts a private mosquitto with the dynamic-security
// plugin on a free loopback port; it returns its address and the admin's
// password file.
func dynsecMosquitto(t *testing.T) (addr, pwFile string) {
	t.Helper()
	m := synctest.StartMosquitto(t)
	return m.Addr, m.AdminPasswordFile
}

// mqttLogin connects to addr as f; it returns the CONNACK reason code
// and, when accepted, the client and the messages it receives.
func mqttLogin(t *testing.T, addr, clientID, username, password string) (byte, *paho.Client, chan *paho.Publish) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rx := make(chan *paho.Publish, 8)
	cl := paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			select {
			case rx <- pr.Packet:
			default:
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil {
		nc.Close()
		if ca == nil {
			t.Fatalf("connect: %v", err)
		}
		return ca.ReasonCode, nil, nil
	}
	t.Cleanup(func() { _ = cl.Disconnect(&paho.Disconnect{}); <-cl.Done() })
	return 0, cl, rx
}

// startDynsecHub runs totemhub on a private mosquitto with [broker]
// dynsec, t-01 provisioned, until the test ends; it returns mosquitto's
// address, the credentials directory, the config file and the hub's log.
func startDynsecHub(t *testing.T) (addr, credDir, cfg string, logs *syncBuf) {
	t.Helper()
	addr, pwFile := dynsecMosquitto(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "hub")
	credDir = filepath.Join(dir, "creds")
	cfg = filepath.Join(dir, "totemhub.toml")
	doc := fmt.Sprintf("state_dir = %q\n[broker]\nembedded = false\nurl = \"mqtt://%s\"\ncredentials_file = %q\n"+
		"dynsec = true\ndynsec_user = \"dynsec-admin\"\ndynsec_password_file = %q\n[http]\nlisten = \"\"\n"+
		"[fleet]\ncredentials_dir = %q\nprovision = [\"t-01\"]\nconsole = \"console\"\n",
		state, addr, filepath.Join(credDir, "hub-a.json"), pwFile, credDir)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := provisionRole(cfg, "hub", "hub-a"); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs = new(syncBuf)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", cfg}, nil, logs, logs) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "ingest subscribed"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hub's ingest did not subscribe on mosquitto: %s", logs.String())
		}
	}
	return addr, credDir, cfg, logs
}

// A totem that names its username in its rotation request, on totemhub
// with [broker] dynsec: the reply gives it the other username, its
// connection with the old secret lives on, and a totem that died before
// saving the new secret logs in with the old one (one-step rotation
// refused it: the regression) and rotates again; ops' lock refuses both
// usernames meanwhile; once the totem's presence says it is online as
// the new username, mosquitto refuses the old one.
func TestHubDynsecRotationOverlap(t *testing.T) {
	addr, credDir, _, logs := startDynsecHub(t)
	f, err := creds.Load(filepath.Join(credDir, "t-01.json"))
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	// rotate asks for next as the totem logged in as user with password,
	// and returns the reply's username.
	rotate := func(user, password, next string) string {
		t.Helper()
		code, cl, rx := mqttLogin(t, addr, "t-01", user, password)
		if code != 0 {
			t.Fatalf("%s refused by mosquitto before its rotation: 0x%02X", user, code)
		}
		if _, err := cl.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.Topic("t-01", protocol.LeafRotated), QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		b, _ := protocol.Marshal(protocol.RotateRequest{V: protocol.Version, ID: "r-" + user, Password: next, Username: user})
		if _, err := cl.Publish(sctx, &paho.Publish{Topic: protocol.Topic("t-01", protocol.LeafRotate), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
		var r *protocol.RotateReply
		select {
		case p := <-rx:
			if r, err = protocol.DecodeRotateReply(p.Payload); err != nil || !r.OK {
				t.Fatalf("rotation reply %+v %v", r, err)
			}
		case <-sctx.Done():
			t.Fatalf("no rotation reply\n%s", logs.String())
		}
		select {
		case <-cl.Done():
			t.Fatal("the rotation ended the connection of the old secret")
		case <-time.After(300 * time.Millisecond):
		}
		_ = cl.Disconnect(&paho.Disconnect{}) // dies before saving
		return r.Username
	}
	next := "rotated-secret-0123456789-0123456789-abcdef"
	if u := rotate("t-01", f.Password, next); u != "t-01.b" {
		t.Fatalf("the reply's username: %q, want t-01.b", u)
	}
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01", f.Password); code != 0 {
		t.Fatalf("a totem that did not save the rotated secret is refused its old one: 0x%02X", code)
	}
	// It rotates again from the old secret and, this time, saves.
	next2 := "rotated-again-0123456789-0123456789-abcdef"
	if u := rotate("t-01", f.Password, next2); u != "t-01.b" {
		t.Fatalf("the reply's username: %q, want t-01.b", u)
	}
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01.b", next); code == 0 {
		t.Fatal("the replaced pending secret still logs in")
	}

	// Ops' lock, while both usernames are valid, refuses both.
	cf, err := creds.Load(filepath.Join(credDir, "console.json"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cmdsig.LoadPrivate(filepath.Join(credDir, "console.key"))
	if err != nil {
		t.Fatal(err)
	}
	code, cc, replies := mqttLogin(t, addr, "console-1", "console", cf.Password)
	if code != 0 {
		t.Fatalf("the console refused by mosquitto: 0x%02X", code)
	}
	if _, err := cc.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.HubReplyTopic("console"), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	hubCmd := func(name string, args map[string]string) {
		t.Helper()
		c := protocol.Command{V: 1, ID: name + "-0123456789abcdef", Name: name, Args: args}
		if err := cmdsig.Sign(key, &c, cmdsig.HubTarget, "", time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		b, _ := protocol.Marshal(c)
		if _, err := cc.Publish(sctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{ResponseTopic: protocol.HubReplyTopic("console")}}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-replies:
			var r protocol.Reply
			if err := json.Unmarshal(p.Payload, &r); err != nil || !r.OK || r.ID != c.ID {
				t.Fatalf("%s: reply %s %v", name, p.Payload, err)
			}
		case <-sctx.Done():
			t.Fatalf("%s: no reply from the hub", name)
		}
	}
	hubCmd("lock", map[string]string{"name": "t-01"})
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01", f.Password); code == 0 {
		t.Fatal("locked: the old username logged in")
	}
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01.b", next2); code == 0 {
		t.Fatal("locked: the new username logged in")
	}
	hubCmd("unlock", map[string]string{"name": "t-01"})

	// Online as the new username (its birth says so): the old one ends.
	code, tc, _ := mqttLogin(t, addr, "t-01", "t-01.b", next2)
	if code != 0 {
		t.Fatalf("the new username refused: 0x%02X", code)
	}
	b, _ := protocol.Marshal(protocol.State{V: protocol.Version, Totem: "t-01", Status: protocol.Online, User: "t-01.b"})
	if _, err := tc.Publish(sctx, &paho.Publish{Topic: protocol.Topic("t-01", protocol.LeafState), QoS: 1, Retain: true, Payload: b}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, _ := mqttLogin(t, addr, "t-01", "t-01", f.Password); code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old username still logs in after the totem was seen as the new one\n%s", logs.String())
		}
	}
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01.b", next2); code != 0 {
		t.Fatalf("the new username refused after the confirmation: 0x%02X", code)
	}
	if strings.Contains(logs.String(), next2) || strings.Contains(logs.String(), f.Password) {
		t.Error("a secret is in the hub's log")
	}
}

// totemhub --broker on a mosquitto with [broker] dynsec: the hub brings
// the plugin in line with its registry at start (its own identity, the
// provisioned totems), a totem of before the two usernames (its rotation
// request names none) rotates its secret through the hub in one step and
// reads the reply before mosquitto ends its connection, the new secret
// works and the old one no longer does; ops' lock ends the totem's
// connection and refuses it, the unlock lets it in; a totem enrolled by
// code on mosquitto logs in with what it got; a hub identity provisioned
// while the hub runs logs in to mosquitto.
func TestHubDrivesMosquittoDynsec(t *testing.T) {
	addr, credDir, cfg, logs := startDynsecHub(t)
	f, err := creds.Load(filepath.Join(credDir, "t-01.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, cl, rx := mqttLogin(t, addr, "t-01", "t-01", f.Password)
	if code != 0 {
		t.Fatalf("provisioned totem refused by mosquitto: 0x%02X\n%s", code, logs.String())
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if _, err := cl.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.Topic("t-01", protocol.LeafRotated), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	next := "rotated-secret-0123456789-0123456789-abcdef"
	b, _ := protocol.Marshal(protocol.RotateRequest{V: protocol.Version, ID: "r1", Password: next})
	if _, err := cl.Publish(sctx, &paho.Publish{Topic: protocol.Topic("t-01", protocol.LeafRotate), QoS: 1, Payload: b}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-rx:
		r, err := protocol.DecodeRotateReply(p.Payload)
		if err != nil || !r.OK || r.ID != "r1" {
			t.Fatalf("rotation reply %+v %v", r, err)
		}
	case <-sctx.Done():
		t.Fatalf("no rotation reply before the connection ended\n%s", logs.String())
	}
	select {
	case <-cl.Done(): // mosquitto ends the connection once it has the new secret
	case <-sctx.Done():
		t.Fatal("the old secret's connection survived the rotation")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, _ = mqttLogin(t, addr, "t-01", "t-01", next); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated secret is refused: 0x%02X", code)
		}
	}
	if code, _, _ = mqttLogin(t, addr, "t-01", "t-01", f.Password); code == 0 {
		t.Fatal("the old secret still works after the rotation")
	}

	// Lock and unlock by ops' signed commands to the hub: mosquitto
	// disables the totem (its connection ends) and enables it again.
	cf, err := creds.Load(filepath.Join(credDir, "console.json"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := cmdsig.LoadPrivate(filepath.Join(credDir, "console.key"))
	if err != nil {
		t.Fatal(err)
	}
	code, cc, replies := mqttLogin(t, addr, "console-1", "console", cf.Password)
	if code != 0 {
		t.Fatalf("the console refused by mosquitto: 0x%02X", code)
	}
	if _, err := cc.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.HubReplyTopic("console"), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	hubCmd := func(name string, args map[string]string) json.RawMessage {
		t.Helper()
		c := protocol.Command{V: 1, ID: name + "-0123456789abcdef", Name: name, Args: args}
		if err := cmdsig.Sign(key, &c, cmdsig.HubTarget, "", time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		b, _ := protocol.Marshal(c)
		if _, err := cc.Publish(sctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{ResponseTopic: protocol.HubReplyTopic("console")}}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-replies:
			var r protocol.Reply
			if err := json.Unmarshal(p.Payload, &r); err != nil || !r.OK || r.ID != c.ID {
				t.Fatalf("%s: reply %s %v", name, p.Payload, err)
			}
			return r.Data
		case <-sctx.Done():
			t.Fatalf("%s: no reply from the hub", name)
		}
		return nil
	}
	_, tc, _ := mqttLogin(t, addr, "t-01", "t-01", next)
	hubCmd("lock", map[string]string{"name": "t-01"})
	select {
	case <-tc.Done():
	case <-sctx.Done():
		t.Fatal("a locked totem kept its connection to mosquitto")
	}
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01", next); code == 0 {
		t.Fatal("a locked totem logged in to mosquitto")
	}
	hubCmd("unlock", map[string]string{"name": "t-01"})
	if code, _, _ := mqttLogin(t, addr, "t-01", "t-01", next); code != 0 {
		t.Fatalf("an unlocked totem refused by mosquitto: 0x%02X", code)
	}

	// Enrollment: a code from ops, exchanged by the enroll user on
	// mosquitto; the credentials the hub hands out work there.
	var en struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(hubCmd("enroll", map[string]string{"totem": "t-new"}), &en); err != nil || en.Code == "" {
		t.Fatalf("enroll: %+v %v", en, err)
	}
	nf, _, err := enroll.Client{URL: "mqtt://" + addr, Totem: "t-new"}.Exchange(sctx, en.Code)
	if err != nil {
		t.Fatalf("enrollment on mosquitto: %v", err)
	}
	if code, _, _ := mqttLogin(t, addr, "t-new", "t-new", nf.Password); code != 0 {
		t.Fatalf("an enrolled totem refused by mosquitto: 0x%02X", code)
	}

	if out, err := provisionRole(cfg, "hub", "hub-c"); err != nil || !strings.Contains(out, "running hub") {
		t.Fatalf("%s %v", out, err)
	}
	fc, err := creds.Load(filepath.Join(credDir, "hub-c.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := mqttLogin(t, addr, "totemhub-c-1", "hub-c", fc.Password); code != 0 {
		t.Fatalf("hub identity provisioned while the hub runs refused by mosquitto: 0x%02X", code)
	}
}
