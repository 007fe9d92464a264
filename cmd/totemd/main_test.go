package main

import (
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
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

type fakeLink struct {
	up  bool
	ref *protocol.Refusal
}

func (f fakeLink) Connected() bool { return f.up }
func (f fakeLink) Refused() (protocol.Refusal, bool) {
	if f.ref == nil {
		return protocol.Refusal{}, false
	}
	return *f.ref, true
}

// The status line under the panel says why the broker refuses the totem,
// code and meaning, rather than a bare "fuori linea".
func TestLinkState(t *testing.T) {
	for _, c := range []struct {
		link fakeLink
		want string
	}{
		{fakeLink{up: true}, "in linea"},
		{fakeLink{}, "fuori linea"},
		{fakeLink{ref: &protocol.Refusal{Code: 0x85, Reason: "identificativo del totem non valido o già in uso", Count: 2}},
			"rifiutato (0x85 identificativo del totem non valido o già in uso), nuovo tentativo più tardi"},
		{fakeLink{ref: &protocol.Refusal{Code: 0x86, Reason: "nome utente o password errati", Count: 1}},
			"rifiutato (0x86 nome utente o password errati), nuovo tentativo più tardi"},
	} {
		if got := linkState(c.link); got != c.want {
			t.Errorf("linkState(%+v) = %q, want %q", c.link, got, c.want)
		}
	}
}
