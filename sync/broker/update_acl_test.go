package broker

import (
	"testing"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
)

// Updates: a totem asks for chunks and reports (update_req) and receives
// offers and chunks (update) on its own subtree only; only the hub
// publishes update, so a totem, or a console, can never hand another
// totem a bundle (which the totem would refuse unsigned anyway).
func TestUpdateTopicsACL(t *testing.T) {
	const (
		T = creds.RoleTotem
		H = creds.RoleHub
		C = creds.RoleConsole
		W = true
		R = false
	)
	for _, c := range []struct {
		role, user, topic string
		write, want       bool
	}{
		{T, "A", "totem/v1/A/update_req", W, true},
		{T, "A", "totem/v1/A/update", R, true},
		{T, "A", "totem/v1/A/update", W, false},
		{T, "A", "totem/v1/B/update", W, false},
		{T, "A", "totem/v1/B/update", R, false},
		{T, "A", "totem/v1/+/update", R, false},
		{T, "A", "totem/v1/B/update_req", W, false},
		{T, "A", "totem/v1/A/update_req", R, false},
		{T, "A", "totem/v1/A/update/x", R, false},
		{H, "hub", "totem/v1/A/update", W, true},
		{H, "hub", "totem/v1/+/update", W, false},
		{H, "hub", protocol.SharedUpdateFilter, R, true},
		{H, "hub", "totem/v1/+/update_req", R, true},
		{H, "hub", "totem/v1/A/update_req", W, false},
		{H, "hub", "totem/v1/+/update", R, false},
		{C, "console1", "totem/v1/A/update", W, false},
		{C, "console1", "totem/v1/A/update_req", W, false},
		{C, "console1", "totem/v1/+/update", R, false},
		{C, "console1", "totem/v1/+/update_req", R, false},
		// Bundles reach the hub on the console's own upload topic.
		{C, "console1", protocol.HubUploadTopic("console1"), W, true},
		{C, "console1", protocol.HubUploadTopic("console2"), W, false},
		{C, "console1", protocol.HubUploadTopic("+"), R, false},
		{T, "A", protocol.HubUploadTopic("A"), W, false},
		{H, "hub", protocol.SharedHubUploadFilter, R, true},
		{H, "hub", protocol.HubUploadTopic("console1"), W, false},
		{H, "hub", protocol.HubUploadTopic("console1"), R, true}, // delivered
		{H, "hub", protocol.HubUploadTopic("#"), R, false},
		{H, "hub", protocol.HubUploadTopic("a/b"), R, false},
	} {
		if got := allowed(c.role, c.user, c.topic, c.write); got != c.want {
			t.Errorf("%s %s %s write=%v: %v, want %v", c.role, c.user, c.topic, c.write, got, c.want)
		}
	}
}

func TestRegistryTotems(t *testing.T) {
	reg, err := OpenRegistry(t.TempDir() + "/reg.db")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	dir := t.TempDir()
	for _, u := range []struct{ name, role string }{{"b", creds.RoleTotem}, {"a", creds.RoleTotem}, {"ops", creds.RoleConsole}, {"hub", creds.RoleHub}} {
		if _, err := reg.Provision(u.name, u.role, dir+"/"+u.name+".json"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := reg.Totems()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("Totems: %v", got)
	}
}
