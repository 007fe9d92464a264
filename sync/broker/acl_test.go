package broker

import (
	"strings"
	"testing"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
)

func TestAllowed(t *testing.T) {
	const (
		T  = creds.RoleTotem
		H  = creds.RoleHub
		C  = creds.RoleConsole
		W  = true  // publish
		R  = false // subscribe / deliver
		ok = true
		no = false
	)
	long := "totem/v1/A/" + strings.Repeat("x", 300)
	tests := []struct {
		role, user, topic string
		write, want       bool
	}{
		// totem A: own subtree only.
		{T, "A", "totem/v1/A/op", W, ok},
		{T, "A", "totem/v1/A/state", W, ok},
		{T, "A", "totem/v1/A/telemetry", W, ok},
		{T, "A", "totem/v1/A/event", W, ok},
		{T, "A", "totem/v1/A/reply/console1", W, ok},
		{T, "A", "totem/v1/A/result", R, ok},
		{T, "A", "totem/v1/A/cmd", R, ok},
		{T, "A", "totem/v1/A/policy", R, ok},
		{T, "A", "totem/v1/A/sync", W, ok},
		{T, "A", "totem/v1/A/ledger", R, ok},
		{T, "A", "totem/v1/B/sync", W, no},
		{T, "A", "totem/v1/B/ledger", R, no},
		{T, "A", "totem/v1/+/ledger", R, no},
		{T, "A", "totem/v1/A/ledger", W, no},
		{T, "A", "totem/v1/A/sync", R, no},
		{T, "A", "totem/v1/B/op", W, no},
		{T, "A", "totem/v1/B/cmd", R, no},
		{T, "A", "totem/v1/A/op", R, no},
		{T, "A", "totem/v1/A/result", W, no},
		{T, "A", "totem/v1/A/cmd", W, no},
		{T, "A", "totem/v1/A/policy", W, no},
		{T, "A", "totem/v1/A/reply", W, no},
		{T, "A", "totem/v1/A/reply/", W, no},
		{T, "A", "totem/v1/A/reply/c/d", W, no},
		{T, "A", "totem/v1/A/reply/+", W, no},
		{T, "A", "totem/v1/A/reply/#", W, no},
		{T, "A", "totem/v1/A/../B/op", W, no},
		{T, "A", "totem/v1/A/op/extra", W, no},
		{T, "A", "totem/v1/A/cmd/extra", R, no},
		{T, "A", "totem/v1/A//op", W, no},
		{T, "A", "totem/v1//A/op", W, no},
		{T, "A", "totem//v1/A/op", W, no},
		{T, "A", "/totem/v1/A/op", W, no},
		{T, "A", "totem/v1/A/", W, no},
		{T, "A", "totem/v1/A", W, no},
		{T, "A", "totem/v2/A/op", W, no},
		{T, "A", "TOTEM/v1/A/op", W, no},
		{T, "A", "totem/v1/a/op", W, no},
		{T, "A", "totem/v1/A/#", R, no},
		{T, "A", "totem/v1/A/+", R, no},
		{T, "A", "totem/v1/+/cmd", R, no},
		{T, "A", "totem/v1/#", R, no},
		{T, "A", "#", R, no},
		{T, "A", "+/+/+/op", W, no},
		{T, "A", "+/+/+/cmd", R, no},
		{T, "A", "$share/x/totem/v1/A/cmd", R, no},
		{T, "A", "$SYS/#", R, no},
		{T, "A", "$SYS/broker/clients", R, no},
		{T, "A", "", W, no},
		{T, "A", "", R, no},
		{T, "A", long, W, no},
		{T, "+", "totem/v1/+/op", W, no},
		{T, "+", "totem/v1/+/cmd", R, no},
		{T, "#", "totem/v1/#", R, no},
		{T, "A/op", "totem/v1/A/op/op", W, no},
		{T, "", "totem/v1//op", W, no},
		// hub.
		{H, "hub", "totem/v1/A/result", W, ok},
		{H, "hub", "totem/v1/B/policy", W, ok},
		{H, "hub", protocol.SharedOpFilter, R, ok},
		{H, "hub", "$share/other/totem/v1/+/op", R, ok},
		{H, "hub", "totem/v1/+/op", R, ok},
		{H, "hub", "totem/v1/A/op", R, ok},
		{H, "hub", "totem/v1/+/state", R, ok},
		{H, "hub", "totem/v1/+/telemetry", R, ok},
		{H, "hub", "totem/v1/A/event", R, ok},
		{H, "hub", protocol.SharedSyncFilter, R, ok},
		{H, "hub", "totem/v1/A/ledger", W, ok},
		{H, "hub", "totem/v1/+/ledger", W, no},
		{H, "hub", "totem/v1/A/sync", W, no},
		{H, "hub", "totem/v1/+/ledger", R, no},
		{H, "hub", "totem/v1/+/result", W, no},
		{H, "hub", "totem/v1/A/op", W, no},
		{H, "hub", "totem/v1/A/cmd", W, no},
		{H, "hub", "totem/v1/A/result/x", W, no},
		{H, "hub", "totem/v1/A/cmd", R, no},
		{H, "hub", "totem/v1/+/reply/+", R, no},
		{H, "hub", "totem/v1/+/result", R, no},
		{H, "hub", "totem/v1/#", R, no},
		{H, "hub", "#", R, no},
		{H, "hub", "+/+/+/op", R, no},
		{H, "hub", "totem/v1/+/+", R, no},
		{H, "hub", "$share/totemhub/#", R, no},
		{H, "hub", "$share//totem/v1/+/op", R, no},
		{H, "hub", "$share/+/totem/v1/+/op", R, no},
		{H, "hub", "$share/g", R, no},
		{H, "hub", "$share/a/$share/b/totem/v1/+/op", R, no},
		{H, "hub", "$SYS/#", R, no},
		{H, "hub", "totem/v1/../op", R, no},
		{H, "hub", "totem/v1/+/op/extra", R, no},
		// console C.
		{C, "C", "totem/v1/A/cmd", W, ok},
		{C, "C", "totem/v1/+/state", R, ok},
		{C, "C", "totem/v1/A/state", R, ok},
		{C, "C", "totem/v1/+/telemetry", R, ok},
		{C, "C", "totem/v1/+/event", R, ok},
		{C, "C", "totem/v1/+/reply/C", R, ok},
		{C, "C", "totem/v1/A/reply/C", R, ok},
		{C, "C", "totem/v1/+/cmd", W, no},
		{C, "C", "totem/v1/A/cmd/x", W, no},
		{C, "C", "totem/v1/A/state", W, no},
		{C, "C", "totem/v1/A/op", W, no},
		{C, "C", "totem/v1/+/op", R, no},
		{C, "C", "totem/v1/A/op", R, no},
		{C, "C", "totem/v1/+/result", R, no},
		{C, "C", "totem/v1/A/sync", W, no},
		{C, "C", "totem/v1/A/ledger", R, no},
		{C, "C", "totem/v1/A/ledger", W, no},
		{C, "C", "totem/v1/+/reply/D", R, no},
		{C, "C", "totem/v1/+/reply/+", R, no},
		{C, "C", "totem/v1/+/reply/#", R, no},
		{C, "C", "totem/v1/+/cmd", R, no},
		{C, "C", "totem/v1/#", R, no},
		{C, "C", "#", R, no},
		{C, "C", "$share/x/totem/v1/+/state", R, no},
		{C, "C", "$SYS/#", R, no},
		{C, "+", "totem/v1/+/reply/+", R, no},
		// unknown role.
		{"", "A", "totem/v1/A/op", W, no},
		{"admin", "A", "#", R, no},
	}
	for _, tt := range tests {
		if got := allowed(tt.role, tt.user, tt.topic, tt.write); got != tt.want {
			t.Errorf("allowed(%q, %q, %q, write=%v) = %v, want %v", tt.role, tt.user, tt.topic, tt.write, got, tt.want)
		}
	}
}

func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"totem/v1/A/op", "totem/v1/+/reply/C", protocol.SharedOpFilter, "#", "totem/v1/A/../B/op"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, topic string, write bool) {
		for _, role := range []string{creds.RoleTotem, creds.RoleHub, creds.RoleConsole} {
			if !allowed(role, "A", topic, write) {
				continue
			}
			// Whatever passes stays in the tree and never uses '#'.
			if strings.Contains(topic, "#") || len(topic) > maxTopic {
				t.Fatalf("%s allowed %q", role, topic)
			}
			if write && strings.Contains(topic, "+") {
				t.Fatalf("%s may publish to wildcard %q", role, topic)
			}
			if !strings.HasPrefix(topic, protocol.Root+"/") && !(role == creds.RoleHub && strings.HasPrefix(topic, "$share/")) {
				t.Fatalf("%s allowed %q outside the tree", role, topic)
			}
			if role == creds.RoleTotem && !strings.HasPrefix(topic, protocol.Root+"/A/") {
				t.Fatalf("totem A allowed %q", topic)
			}
		}
	})
}
func TestHubCommandTopicACL(t *testing.T) {
	cases := []struct {
		role, user, topic string
		write, want       bool
	}{
		{creds.RoleConsole, "ops", "totemhub/v1/cmd", true, true},
		{creds.RoleConsole, "ops", "totemhub/v1/reply/ops", false, true},
		{creds.RoleConsole, "ops", "totemhub/v1/reply/other", false, false},
		{creds.RoleConsole, "ops", "totemhub/v1/reply/+", false, false},
		{creds.RoleConsole, "ops", "totemhub/v1/cmd", false, false},
		{creds.RoleHub, "totemhub", "$share/totemhub/totemhub/v1/cmd", false, true},
		{creds.RoleHub, "totemhub", "totemhub/v1/reply/ops", true, true},
		{creds.RoleHub, "totemhub", "totemhub/v1/reply/../x", true, false},
		{creds.RoleTotem, "t1", "totemhub/v1/cmd", true, false},
		{creds.RoleTotem, "t1", "totemhub/v1/reply/t1", false, false},
	}
	for _, c := range cases {
		if got := allowed(c.role, c.user, c.topic, c.write); got != c.want {
			t.Errorf("allowed(%s, %s, %q, write=%v) = %v", c.role, c.user, c.topic, c.write, got)
		}
	}
}
