package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aslcns/totem/sync/creds"
)

// A console's credentials file others can read is refused, as ssh refuses
// an exposed key, with the command that mends it; before, totemctl used
// it. The check comes before any connection (the broker URL is unused).
func TestWorldReadableCredentialsRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.json")
	f, _ := creds.Generate("console", creds.RoleConsole)
	if err := creds.Save(p, f); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errw bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := run(ctx, []string{"--creds", p, "--broker", "mqtt://127.0.0.1:1", "cmd", "t-01", "ping"}, nil, &out, &errw)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Fatalf("totemctl with a 0644 credentials file: %v", err)
	}
	if strings.Contains(err.Error(), f.Password) || strings.Contains(err.Error(), "is the hub running") {
		t.Fatalf("misleading or revealing error: %v", err)
	}
}
