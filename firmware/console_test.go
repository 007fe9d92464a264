package firmware_test

import (
	"slices"
	"sort"
	"testing"

	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/sync/cmdsig"
)

// The totem runs exactly the commands the verifier's role table lets
// through: one more here would be refused as unknown_command before it
// arrives (as void once was), one more there would reach a totem that
// answers "unknown command".
func TestCommandsMatchTheRoleTable(t *testing.T) {
	var roles []string
	for name := range cmdsig.Commands("demo-01") {
		roles = append(roles, name)
	}
	sort.Strings(roles)
	if got := firmware.Commands(); !slices.Equal(got, roles) {
		t.Errorf("the totem runs %v, the role table has %v", got, roles)
	}
}
