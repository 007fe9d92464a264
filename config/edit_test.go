package config

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

const editDoc = `# totem
state_dir = "/var/lib/totem" # where

[totem]
id = "t1"

[log]
# lowest level
level = "info" # as shipped
format = "text"

[[console_keys]]
id = "ops-1"
role = "ops"
public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
`

func TestEdit(t *testing.T) {
	for _, tc := range []struct {
		set  Setting
		want []string // substrings of the result
	}{
		{Setting{"log.level", "debug"}, []string{"# lowest level\nlevel = 'debug'\nformat"}},
		{Setting{"log.level", `"warn"`}, []string{`level = "warn"`}},
		{Setting{"totem.asl", "ASL Roma 1"}, []string{"[totem]\nasl = 'ASL Roma 1'\nid = \"t1\""}},
		{Setting{"sync.telemetry_interval", "10s"}, []string{"\n[sync]\ntelemetry_interval = '10s'\n"}},
		{Setting{"state_dir", "/srv/totem"}, []string{"state_dir = '/srv/totem'"}},
		{Setting{"console_keys_file", "/etc/totem/keys.json"}, []string{"console_keys_file = '/etc/totem/keys.json'\n[totem]"}},
		{Setting{"update.enabled", "true"}, []string{"[update]\nenabled = true"}},
	} {
		b, err := Edit([]byte(editDoc), []Setting{tc.set})
		if err != nil {
			t.Errorf("Edit(%v): %v", tc.set, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("Edit(%v) lacks %q:\n%s", tc.set, w, b)
			}
		}
		if !strings.Contains(string(b), "# totem\n") {
			t.Errorf("Edit(%v) lost the first comment", tc.set)
		}
		if _, err := LoadTotemdBytes("x.toml", b); err != nil {
			t.Errorf("Edit(%v) gives a file that does not load: %v\n%s", tc.set, err, b)
		}
	}
	for _, bad := range []Setting{{"console_keys.role", "technician"}, {"log..level", "x"}, {"", "x"}, {"a b", "x"},
		{"totem.asl", "\"a\"\n[update]\nenabled = true"}} {
		if _, err := Edit([]byte(editDoc), []Setting{bad}); err == nil {
			t.Errorf("Edit(%v) accepted", bad)
		}
	}
	multi := "[devices.keypad]\nrows = [\n  \"a\",\n  \"b\",\n]\n"
	if _, err := Edit([]byte(multi), []Setting{{"devices.keypad.rows", `["c"]`}}); err == nil {
		t.Error("a value over several lines rewritten on one line was accepted")
	}
}

func TestChangedAndFlatten(t *testing.T) {
	a, b := DefaultTotemd(), DefaultTotemd()
	b.Log.Level, b.Sync.TelemetryInterval.Duration = "debug", 1
	b.ConsoleKeys = []ConsoleKey{{ID: "k", Role: "ops", PublicKey: "x"}}
	got := strings.Join(Changed(a, b), ",")
	if got != "console_keys,log.level,sync.telemetry_interval" {
		t.Fatalf("Changed = %s", got)
	}
	m, err := Flatten(DefaultTotemctl())
	if err != nil || m["key_file"] != Redacted || m["timeout"] != "'3s'" {
		t.Fatalf("Flatten = %v, %v", m, err)
	}
}

func FuzzEdit(f *testing.F) {
	f.Add([]byte(editDoc), "log.level", "debug")
	f.Add([]byte(editDoc), "console_keys.id", "x")
	f.Add([]byte("a = [\n1,\n2]\n"), "a", "3")
	f.Add([]byte("[x]\ny = 1\n[x.z]\nw = 2\n"), "x.z.w", "'q'")
	f.Add([]byte(""), "state_dir", `"a\"b"`)
	f.Fuzz(func(t *testing.T, doc []byte, key, value string) {
		var m map[string]any
		if toml.Unmarshal(doc, &m) != nil {
			return
		}
		out, err := Edit(doc, []Setting{{key, value}})
		if err != nil {
			return
		}
		var again map[string]any
		if err := toml.Unmarshal(out, &again); err != nil {
			t.Fatalf("Edit gave a document that does not parse: %v\n%s", err, out)
		}
	})
}

func TestParseSetting(t *testing.T) {
	if s, err := ParseSetting(" log.level = debug "); err != nil || s.Key != "log.level" || s.Value != "debug" {
		t.Fatalf("ParseSetting = %+v, %v", s, err)
	}
	for _, bad := range []string{"log.level", "=debug", "totem.asl=a\n[update]"} {
		if _, err := ParseSetting(bad); err == nil {
			t.Errorf("ParseSetting(%q) accepted", bad)
		}
	}
}
