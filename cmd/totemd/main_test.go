package main

import (
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/outbox"
)

// The deploy example's [outbox] section reaches the outbox: quotas, the
// alarm and the classes.
func TestOutboxOptions(t *testing.T) {
	cfg, err := config.LoadTotemd(filepath.Join("..", "..", "deploy", "totemd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Outbox.TelemetryKinds = []string{"telemetry"}
	cfg.Outbox.AuditKinds = []string{"audit"}
	alarm := func(outbox.Usage) {}
	o := outboxOptions(cfg, nil, nil, alarm)
	if o.MaxSize != 256<<20 || o.MaxPending != 100000 || o.AlarmAt != 0.8 || o.OnAlarm == nil {
		t.Fatalf("options %+v", o)
	}
	if o.Classes["telemetry"] != outbox.ClassTelemetry || o.Classes["audit"] != outbox.ClassAudit || o.Classes["consent"] != outbox.ClassCitizen {
		t.Fatalf("classes %v", o.Classes)
	}
	// And an outbox opens with them.
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	if u, err := box.Usage(); err != nil || u.MaxSize != 256<<20 || u.MaxPending != 100000 {
		t.Fatalf("usage %+v, %v", u, err)
	}
}
