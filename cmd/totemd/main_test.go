package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/creds"
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
		{fakeLink{ref: &protocol.Refusal{Code: 0x8A, Reason: "credenziali bloccate dopo troppi tentativi errati", Count: 1}},
			"credenziali bloccate (0x8A): chiedere a ops lo sblocco o riattivare il totem"},
	} {
		if got := linkState(c.link); got != c.want {
			t.Errorf("linkState(%+v) = %q, want %q", c.link, got, c.want)
		}
	}
}

// A missing credentials file is a wait for enrollment; a malformed or
// exposed one is an error naming the file (not quoting it) — before, both
// read "no credentials yet" and the totem waited for ever.
func TestAwaitCredsSaysWhy(t *testing.T) {
	dir := t.TempDir()
	const secret = "Zq9SECRETtokenXYZ"
	good, _ := creds.Generate("t-01", creds.RoleTotem)
	exposed := filepath.Join(dir, "exposed.json")
	if err := creds.Save(exposed, good); err != nil {
		t.Fatal(err)
	}
	os.Chmod(exposed, 0o644)
	malformed := filepath.Join(dir, "malformed.json")
	os.WriteFile(malformed, []byte(`{"username":"t-01","password":`+secret+`}`), 0o600)

	done, cancel := context.WithCancel(context.Background())
	cancel() // one look at the file, then stop waiting
	for _, c := range []struct {
		path, level, want string
	}{
		{filepath.Join(dir, "none.json"), "WARN", "waiting for this totem's enrollment"},
		{malformed, "ERROR", "not a credentials file"},
		{exposed, "ERROR", "chmod 600 " + exposed},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		if _, err := awaitCreds(done, c.path, log, new(sdnotify.Beat)); err == nil {
			t.Fatalf("%s: credentials loaded", c.path)
		}
		line := buf.String()
		if !strings.Contains(line, "level="+c.level) || !strings.Contains(line, c.want) || !strings.Contains(line, c.path) {
			t.Errorf("%s: logged %q, want %s saying %q", c.path, line, c.level, c.want)
		}
		if strings.Contains(line, secret) || strings.Contains(line, good.Password) || strings.Contains(line, "no credentials yet") {
			t.Errorf("%s: logged %q", c.path, line)
		}
	}
	os.Chmod(exposed, 0o600) // mended by a technician
	if c, err := awaitCreds(context.Background(), exposed, slog.New(slog.DiscardHandler), new(sdnotify.Beat)); err != nil || c != good {
		t.Fatalf("mended file: %v", err)
	}
}
