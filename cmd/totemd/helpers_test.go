package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
)

// enrollRig is a hub that enrolls totems: a CA in dir/ca, a broker with
// its certificate on a TLS listener and enrollment on (perSource: its
// rate a source, 0 the default), a registry and the hub on them.
type enrollRig struct {
	*synctest.Central
	Hub *synctest.Hub
	CA  *pki.CA
}

func startEnrollRig(t *testing.T, dir string, now time.Time, perSource int) enrollRig {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "ca"), "test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NewServer(pki.CASource(filepath.Join(dir, "ca"), ca, []string{"127.0.0.1"}), now)
	if err != nil {
		t.Fatal(err)
	}
	c := synctest.Start(t, synctest.Options{Dir: dir, Registry: true,
		Broker: broker.Options{TLSListen: "127.0.0.1:0", TLS: cert.Config(), Enroll: true, EnrollPerSource: perSource}})
	h := c.StartHub(hub.Options{ClientID: c.HubCreds.Username, Enroller: c.Registry})
	return enrollRig{Central: c, Hub: h, CA: ca}
}

// totemConfig writes a configuration of totem t-1 in dir (state in
// dir/state) on the broker at url with its credentials in credsFile,
// brokerTOML the rest of its [broker] section, and returns its path.
func totemConfig(t *testing.T, dir, url, credsFile, brokerTOML string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "totemd-*.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "state_dir = %q\n[totem]\nid = \"t-1\"\n[broker]\nurl = %q\ncredentials_file = %q\n%s",
		filepath.Join(dir, "state"), url, credsFile, brokerTOML); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// totemd runs totemd with args (no stdin) and returns what it printed.
func totemd(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(ctx, args, nil, &out, &errb)
	return out.String(), err
}

// enrollRun is totemd enroll of code with configuration cfg.
func enrollRun(ctx context.Context, cfg, code string) (string, error) {
	return totemd(ctx, "enroll", "--config", cfg, "--timeout", "30s", code)
}
