package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
)

// hubConfig writes a totemhub.toml with its state in a temporary
// directory and returns its path, the state dir and the credentials dir.
func hubConfig(t *testing.T) (cfg, state, credDir string) {
	t.Helper()
	c := hubConf{dir: t.TempDir(), console: "console", noHTTP: true}
	writeConf(t, c)
	return c.path(), c.state(), c.creds()
}

func provision(cfg, id string) (string, error) {
	var out, errw bytes.Buffer
	err := run(context.Background(), []string{"--config", cfg, "provision", id}, nil, &out, &errw)
	return out.String(), err
}

// `totemhub provision console` turned the console into a totem, its
// console rights gone: a name that is a console (or the hub's) is refused,
// and the registry keeps its role.
func TestProvisionKeepsRoles(t *testing.T) {
	cfg, state, credDir := hubConfig(t)
	reg, err := broker.OpenRegistry(filepath.Join(state, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"console", "ops-2"} {
		if _, err := reg.Provision(name, creds.RoleConsole, filepath.Join(credDir, name+".json")); err != nil {
			t.Fatal(err)
		}
	}
	reg.Close()

	for id, want := range map[string]string{
		"console":       "fleet.console",
		"ops-2":         "registered as a console",
		"totemhub-1a2b": "the hub's own clients",
	} {
		if _, err := provision(cfg, id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("provision %s: %v, want an error saying %q", id, err, want)
		}
	}
	if out, err := provision(cfg, "t-01"); err != nil || !strings.Contains(out, "totem t-01 provisioned") {
		t.Fatalf("provision t-01: %q, %v", out, err)
	}

	reg, err = broker.OpenRegistry(filepath.Join(state, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for name, role := range map[string]string{"console": creds.RoleConsole, "ops-2": creds.RoleConsole, "t-01": creds.RoleTotem} {
		if u, ok, err := reg.Get(name); err != nil || !ok || u.Role != role {
			t.Errorf("%s: role %q (registered %v, %v), want %s", name, u.Role, ok, err, role)
		}
	}
	if f, err := creds.Load(filepath.Join(credDir, "console.json")); err != nil || f.Role != creds.RoleConsole {
		t.Errorf("console's credentials file: role %q, %v", f.Role, err)
	}
}

// Provisioning while the hub runs said "open registry: timeout": it says
// the running hub holds the registry, and what to do instead.
func TestProvisionWhileHubRuns(t *testing.T) {
	cfg, state, _ := hubConfig(t)
	held, err := broker.OpenRegistry(filepath.Join(state, "fleet.db")) // as the running hub does
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, err = provision(cfg, "t-01")
	if err == nil {
		t.Fatal("provisioned while the registry was held")
	}
	for _, want := range []string{"held by another process", "totemhub", state, "fleet.provision"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not say %q", err, want)
		}
	}
}
