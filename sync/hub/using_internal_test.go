package hub

import (
	"strings"
	"testing"

	"github.com/aslcns/totem/sync/protocol"
)

// A hub that keeps no broker users (external broker) or no technician set
// answers every command on them with why, before the command runs.
func TestCommandsWithoutTheirStore(t *testing.T) {
	cs := &commands{&Hub{}}
	for name, want := range map[string]string{
		"unlock": "keeps no broker users", "lock": "keeps no broker users",
		"locks": "keeps no broker users", "credentials": "keeps no broker users",
		"technician_add": "keeps no technician set", "technician_list": "keeps no technician set",
		"technician_remove": "keeps no technician set", "technician_unlock_code": "keeps no technician set",
	} {
		f := cs.lookup(name)
		if f == nil {
			t.Fatalf("%s: no handler", name)
		}
		out, err := f(&protocol.Command{Name: name, Args: map[string]string{"name": "t-01", "totem": "t-01"}}, "console-1")
		if err == nil || !strings.Contains(err.Error(), want) || out != nil {
			t.Errorf("%s: %s, %v; want %q", name, out, err, want)
		}
	}
}
