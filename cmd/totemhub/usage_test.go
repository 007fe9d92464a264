package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aslcns/totem/cmd/internal/cli"
)

// "help" and unknown words print the usage and exit 2 before anything is
// opened: no state directory, no registry, no hub.
func TestUsageWords(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"help"}, {"bogus"}, {"provision"}, {"provision", "a", "b"}, {"--broker", "mqtt://127.0.0.1:1", "serve"}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, nil, &out, &errb)
		if code := cli.Report(err, &errb); code != 2 {
			t.Errorf("%q: exit %d (%v)", args, code, err)
		}
		if !strings.Contains(errb.String(), "usage:\n  totemhub") {
			t.Errorf("%q: no usage:\n%s", args, errb.String())
		}
		if _, err := os.Stat("state"); !os.IsNotExist(err) {
			t.Fatalf("%q: the state directory was made", args)
		}
	}
}
