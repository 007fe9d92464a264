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

// enrollRig is a hub that enrolls totems: a CA in Dir/ca, a broker with
// its certificate on a TLS listener and enrollment on, a registry and the
// hub on them; and totem t-1's credentials file to be, in Dir/totem.
type enrollRig struct {
	*synctest.Central
	Hub       *synctest.Hub
	CA        *pki.CA
	Now       time.Time
	Ctx       context.Context // the test's, within its timeout
	CredsFile string
}

// startEnrollRig starts an enrollRig (perSource: the broker's enrollment
// rate a source, 0 the default) for a test of at most timeout.
func startEnrollRig(t *testing.T, timeout time.Duration, perSource int) *enrollRig {
	t.Helper()
	dir, now := t.TempDir(), time.Now()
	ca, cert := synctest.ServerCert(t, filepath.Join(dir, "ca"), "test CA", now)
	c := synctest.Start(t, synctest.Options{Dir: dir, Registry: true,
		Broker: broker.Options{TLSListen: "127.0.0.1:0", TLS: cert.Config(), Enroll: true, EnrollPerSource: perSource}})
	h := c.StartHub(hub.Options{ClientID: c.HubCreds.Username, Enroller: c.Registry})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return &enrollRig{Central: c, Hub: h, CA: ca, Now: now, Ctx: ctx, CredsFile: filepath.Join(dir, "totem", "t-1.json")}
}

// config writes a configuration of totem t-1 (state in Dir/state) on the
// broker at url with its credentials in CredsFile, brokerTOML the rest of
// its [broker] section, and returns its path.
func (r *enrollRig) config(t *testing.T, url, brokerTOML string) string {
	t.Helper()
	f, err := os.CreateTemp(r.Dir, "totemd-*.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "state_dir = %q\n[totem]\nid = \"t-1\"\n[broker]\nurl = %q\ncredentials_file = %q\n%s",
		filepath.Join(r.Dir, "state"), url, r.CredsFile, brokerTOML); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// enroll is totemd enroll of code with the configuration cfg.
func (r *enrollRig) enroll(cfg, code string) (string, error) {
	return totemd(r.Ctx, "enroll", "--config", cfg, "--timeout", "30s", code)
}

// totemd runs totemd with args (no stdin) and returns what it printed.
func totemd(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(ctx, args, nil, &out, &errb)
	return out.String(), err
}
