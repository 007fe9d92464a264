package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/uplink"
)

// What totemd applies live, wired as run wires it: the console keys reach
// the verifier, the alarm threshold the outbox, the level the logger; a
// broker change waits for a restart.
func TestLiveSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "totemd.toml")
	doc := "console_keys_file = \"" + filepath.Join(dir, "none.json") + "\"\n[totem]\nid = \"t-live\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.LoadTotemd(path)
	if err != nil {
		t.Fatal(err)
	}
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	var (
		level    slog.LevelVar
		link     atomic.Pointer[uplink.Uplink]
		verifier atomic.Pointer[cmdsig.Verifier]
		app      atomic.Pointer[firmware.App]
	)
	verifier.Store(cmdsig.NewVerifier("t-live", nil, nil))
	s := liveSettings(path, loaded, &level, &link, &verifier, box, &app, slog.New(slog.DiscardHandler))

	k, err := cmdsig.Generate("ops-new", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	e := k.Public().Entry()
	res, err := s.Set([]config.Setting{
		{Key: "log.level", Value: "debug"}, {Key: "outbox.alarm_at", Value: "0.6"}, {Key: "broker.keep_alive", Value: "10s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelDebug || box.AlarmAt() != 0.6 {
		t.Fatalf("level %v, alarm at %v: not applied live", level.Level(), box.AlarmAt())
	}
	if !slices.Equal(res.Restart, []string{"broker.keep_alive"}) {
		t.Fatalf("restart %v, want broker.keep_alive", res.Restart)
	}
	// A console key added by hand to the file, then SIGHUP.
	b, _ := os.ReadFile(path)
	b = append(b, []byte("\n[[console_keys]]\nid = \""+e.ID+"\"\nrole = \""+e.Role+"\"\npublic_key = \""+e.PublicKey+"\"\n")...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if verifier.Load().Keys() != 0 {
		t.Fatal("keys before the reload")
	}
	res, err = s.Reload()
	if err != nil || !slices.Contains(res.Applied, "console_keys") || verifier.Load().Keys() != 1 {
		t.Fatalf("reload: %+v, %v; %d keys trusted", res, err, verifier.Load().Keys())
	}
}
