package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/eclipse/paho.golang/paho"
)

func provisionRole(cfg, role, name string) (string, error) {
	var out, errw bytes.Buffer
	err := run(context.Background(), []string{"--config", cfg, "provision", "--role", role, name}, nil, &out, &errw)
	return out.String(), err
}

// `totemhub provision --role hub NAME` writes NAME.json, role hub, with
// the hub stopped (on the registry) and while it runs (through the
// running hub's socket, since the hub holds the registry); the identity
// logs in to the hub's broker with the hub's ACL.
func TestProvisionHubIdentity(t *testing.T) {
	conf := hubConf{dir: t.TempDir(), provision: []string{"t-01"}, noHTTP: true}
	writeConf(t, conf)
	cfg, state, credDir := conf.path(), conf.state(), conf.creds()

	// Hub stopped.
	out, err := provisionRole(cfg, "hub", "hub-b")
	if err != nil || !strings.Contains(out, "hub hub-b provisioned: credentials in") {
		t.Fatalf("provision --role hub: %q, %v", out, err)
	}
	f, err := creds.Load(filepath.Join(credDir, "hub-b.json"))
	if err != nil || f.Role != creds.RoleHub || f.Username != "hub-b" {
		t.Fatalf("hub-b.json: %+v, %v", f, err)
	}
	if _, err := provision(cfg, "t-02"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ role, name, want string }{
		{"console", "c-1", "only hub"},
		{"hub", "t-02", "registered as a totem"},
		{"hub", "enroll", "reserved"},
		{"hub", "totemhub-1a2b", "reserved"},
	} {
		if _, err := provisionRole(cfg, c.role, c.name); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("provision --role %s %s: %v, want %q", c.role, c.name, err, c.want)
		}
	}

	// Hub running: it holds fleet.db.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := startTestHub(t, ctx, conf)
	until(t, ctx, "the admin socket", func() bool {
		_, err := os.Stat(filepath.Join(state, adminSocket))
		return err == nil
	}, h)
	out, err = provisionRole(cfg, "hub", "hub-c")
	if err != nil || !strings.Contains(out, "hub hub-c provisioned (by the running hub)") {
		t.Fatalf("provision --role hub while the hub runs: %q, %v", out, err)
	}
	if _, err := provisionRole(cfg, "hub", "t-01"); err == nil || !strings.Contains(err.Error(), "running hub refused") {
		t.Errorf("a totem's name as a hub through the running hub: %v", err)
	}
	fc, err := creds.Load(filepath.Join(credDir, "hub-c.json"))
	if err != nil || fc.Role != creds.RoleHub {
		t.Fatalf("hub-c.json: %+v, %v", fc, err)
	}
	// The identity is the hub role's on the running hub's broker.
	code, cl, _ := mqttLogin(t, h.addr, "totemhub-b-1", fc.Username, fc.Password)
	if code != 0 {
		t.Fatalf("a provisioned hub identity could not log in: 0x%02X", code)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	sa, err := cl.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "$share/totemhub/totem/v1/+/op", QoS: 1}, {Topic: "totem/v1/t-01/result", QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 2 || sa.Reasons[0] != 1 || sa.Reasons[1] < 0x80 { // err: the refusal
		t.Fatalf("hub identity's subscriptions: %v %v, want the ops granted and a totem's results refused", sa, err)
	}
	// The file written while the hub ran keeps working once it stops.
	h.stop()
	reg, err := broker.OpenRegistry(filepath.Join(state, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if role, ok := reg.Authenticate("hub-c", fc.Password); !ok || role != creds.RoleHub {
		t.Fatalf("hub-c in the registry: %q %v", role, ok)
	}
}
