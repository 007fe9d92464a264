package firmware_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
)

const settingsFile = `# totem in the lobby
[totem]
id = "t-set"

[sync]
telemetry_interval = "30s" # default

[log]
level = "info"
`

// liveRig is a Settings on a file, with the log level and the telemetry
// interval applied live the way totemd applies them.
type liveRig struct {
	path      string
	level     *slog.LevelVar
	telemetry time.Duration
	s         *firmware.Settings
}

func newLiveRig(t *testing.T) *liveRig {
	t.Helper()
	r := &liveRig{path: filepath.Join(t.TempDir(), "totemd.toml"), level: new(slog.LevelVar)}
	if err := os.WriteFile(r.path, []byte(settingsFile), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.LoadTotemd(r.path)
	if err != nil {
		t.Fatal(err)
	}
	r.telemetry = loaded.Sync.TelemetryInterval.Duration
	r.s = firmware.NewSettings(r.path, loaded, map[string]func(*config.Totemd) error{
		"log.level":               func(c *config.Totemd) error { return r.level.UnmarshalText([]byte(c.Log.Level)) },
		"sync.telemetry_interval": func(c *config.Totemd) error { r.telemetry = c.Sync.TelemetryInterval.Duration; return nil },
	}, nil)
	return r
}

func TestSettingsSetAppliesLive(t *testing.T) {
	r := newLiveRig(t)
	res, err := r.s.Set([]config.Setting{{Key: "log.level", Value: "debug"}, {Key: "sync.telemetry_interval", Value: "5s"},
		{Key: "session.lang", Value: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.level.Level() != slog.LevelDebug || r.telemetry != 5*time.Second {
		t.Fatalf("level %v, telemetry %v: not applied live", r.level.Level(), r.telemetry)
	}
	if !slices.Equal(res.Applied, []string{"log.level", "sync.telemetry_interval"}) || !slices.Equal(res.Restart, []string{"session.lang"}) {
		t.Fatalf("result %+v", res)
	}
	b, _ := os.ReadFile(r.path)
	if !strings.Contains(string(b), "# totem in the lobby") {
		t.Errorf("the file's comments were lost:\n%s", b)
	}
	if fi, _ := os.Stat(r.path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the file's 0600", fi.Mode().Perm())
	}
	c, err := config.LoadTotemd(r.path)
	if err != nil || c.Log.Level != "debug" || c.Sync.TelemetryInterval.Duration != 5*time.Second || c.Session.Lang != "en" {
		t.Fatalf("file after Set: %v\n%s", err, b)
	}
	// The same value again changes nothing and applies nothing; the
	// restart is still owed.
	res, err = r.s.Set([]config.Setting{{Key: "log.level", Value: "debug"}})
	if err != nil || len(res.Changed) != 0 || len(res.Applied) != 0 || !slices.Equal(res.Restart, []string{"session.lang"}) {
		t.Fatalf("same value again: %+v, %v", res, err)
	}
	if v, _ := r.s.Get(); v.Settings["log.level"] != `'debug'` || v.File != r.path {
		t.Fatalf("Get: %+v", v)
	}
}

// An invalid change is refused with the loader's error naming the file
// and the key or line; the file keeps every byte, nothing is applied.
func TestSettingsSetRefusesInvalid(t *testing.T) {
	r := newLiveRig(t)
	before, _ := os.ReadFile(r.path)
	for _, tc := range []struct {
		sets []config.Setting
		want string
	}{
		{[]config.Setting{{Key: "log.level", Value: "debug"}, {Key: "sync.telemetry_interval", Value: "fast"}}, "duration"},
		{[]config.Setting{{Key: "log.level", Value: "loud"}}, "log.level"},
		{[]config.Setting{{Key: "log.levle", Value: "debug"}}, `unknown key "log.levle"`},
		{[]config.Setting{{Key: "outbox.alarm_at", Value: "2"}}, "outbox.alarm_at"},
		{[]config.Setting{{Key: "log level", Value: "debug"}}, "dotted key"},
	} {
		_, err := r.s.Set(tc.sets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%v) = %v; want an error with %q", tc.sets, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), r.path) && !strings.Contains(tc.want, "dotted") {
			t.Errorf("Set(%v) = %v: the error does not name the file", tc.sets, err)
		}
		if after, _ := os.ReadFile(r.path); string(after) != string(before) {
			t.Fatalf("Set(%v) refused, but the file changed:\n%s", tc.sets, after)
		}
	}
	if r.level.Level() != slog.LevelInfo || r.telemetry != 30*time.Second {
		t.Fatalf("a refused change was applied: level %v, telemetry %v", r.level.Level(), r.telemetry)
	}
	if entries, _ := os.ReadDir(filepath.Dir(r.path)); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// SIGHUP's reload goes through the same apply: the file changed by hand
// is applied live; a file that no longer loads changes nothing.
func TestSettingsReload(t *testing.T) {
	r := newLiveRig(t)
	if err := os.WriteFile(r.path, []byte(strings.Replace(settingsFile, `level = "info"`, `level = "warn"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := r.s.Reload()
	if err != nil || r.level.Level() != slog.LevelWarn || !slices.Equal(res.Applied, []string{"log.level"}) {
		t.Fatalf("reload: %+v, %v, level %v", res, err, r.level.Level())
	}
	if err := os.WriteFile(r.path, []byte(strings.Replace(settingsFile, `level = "info"`, `level = "debug"`+"\nbogus = 1", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.Reload(); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	if r.level.Level() != slog.LevelWarn {
		t.Fatal("a file that does not load was applied")
	}
}

// Without --config there is no file to change.
func TestSettingsWithoutFile(t *testing.T) {
	s := firmware.NewSettings("", config.DefaultTotemd(), nil, nil)
	if _, err := s.Set([]config.Setting{{Key: "log.level", Value: "debug"}}); !errors.Is(err, firmware.ErrNoFile) {
		t.Fatalf("Set without a file: %v", err)
	}
}
