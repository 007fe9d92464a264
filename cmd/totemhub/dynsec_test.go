package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// startDynsecHub runs totemhub on a private mosquitto with [broker]
// dynsec, t-01 provisioned, until the test ends; it returns mosquitto's
// address and log, the credentials directory and the config file.
func startDynsecHub(t *testing.T) (h *testHub, credDir, cfg string) {
	t.Helper()
	addr, pwFile := dynsecMosquitto(t)
	dir := t.TempDir()
	c := hubConf{dir: dir, provision: []string{"t-01"}, console: "console", noHTTP: true, addr: addr,
		brokerTOML: fmt.Sprintf("embedded = false\nurl = \"mqtt://%s\"\n", addr) + dynsecTOML(filepath.Join(dir, "creds"), "hub-a", pwFile)}
	writeConf(t, c)
	if out, err := provisionRole(c.path(), "hub", "hub-a"); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	return startTestHub(t, context.Background(), c), c.creds(), c.path()
}

// A totem that names its username in its rotation request, on totemhub
// with [broker] dynsec: the reply gives it the other username, its
// connection with the old secret lives on, and a totem that died before
// saving the new secret logs in with the old one (one-step rotation
// refused it: the regression) and rotates again; ops' lock refuses both
// usernames meanwhile; once the totem's presence says it is online as
// the new username, mosquitto refuses the old one.
func TestHubDynsecRotationOverlap(t *testing.T) {
	h, credDir, _ := startDynsecHub(t)
	addr, logs := h.addr, h.logs
	f := loadCreds(t, filepath.Join(credDir, "t-01.json"))
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
		subscribe(t, sctx, cl, protocol.Topic("t-01", protocol.LeafRotated))
		b, _ := protocol.Marshal(protocol.RotateRequest{V: protocol.Version, ID: "r-" + user, Password: next, Username: user})
		if _, err := cl.Publish(sctx, &paho.Publish{Topic: protocol.Topic("t-01", protocol.LeafRotate), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
		var r *protocol.RotateReply
		select {
		case p := <-rx:
			var err error
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
	con := dialConsole(t, sctx, addr, credDir, "console-1")
	hubCmd := func(name string, args map[string]string) { t.Helper(); con.command(sctx, name, args) }
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
	until(t, sctx, "the old username still logs in after the totem was seen as the new one", func() bool {
		code, _, _ := mqttLogin(t, addr, "t-01", "t-01", f.Password)
		return code != 0
	}, h)
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
	h, credDir, cfg := startDynsecHub(t)
	addr, logs := h.addr, h.logs
	f := loadCreds(t, filepath.Join(credDir, "t-01.json"))
	code, cl, rx := mqttLogin(t, addr, "t-01", "t-01", f.Password)
	if code != 0 {
		t.Fatalf("provisioned totem refused by mosquitto: 0x%02X\n%s", code, logs.String())
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	subscribe(t, sctx, cl, protocol.Topic("t-01", protocol.LeafRotated))
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
	until(t, sctx, "the rotated secret is refused", func() bool {
		code, _, _ = mqttLogin(t, addr, "t-01", "t-01", next)
		return code == 0
	}, h)
	if code, _, _ = mqttLogin(t, addr, "t-01", "t-01", f.Password); code == 0 {
		t.Fatal("the old secret still works after the rotation")
	}

	// Lock and unlock by ops' signed commands to the hub: mosquitto
	// disables the totem (its connection ends) and enables it again.
	con := dialConsole(t, sctx, addr, credDir, "console-1")
	hubCmd := func(name string, args map[string]string) json.RawMessage {
		t.Helper()
		return con.command(sctx, name, args)
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
	fc := loadCreds(t, filepath.Join(credDir, "hub-c.json"))
	if code, _, _ := mqttLogin(t, addr, "totemhub-c-1", "hub-c", fc.Password); code != 0 {
		t.Fatalf("hub identity provisioned while the hub runs refused by mosquitto: 0x%02X", code)
	}
}
