package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// examples maps each file in deploy/ to its loader and the defaults it must equal.
var examples = []struct {
	file     string
	load     func(string) (any, error)
	defaults any
}{
	{"totemd.toml", func(p string) (any, error) { return LoadTotemd(p) }, DefaultTotemd()},
	{"totemhub.toml", func(p string) (any, error) { return LoadTotemhub(p) }, DefaultTotemhub()},
	{"totemctl.toml", func(p string) (any, error) { return LoadTotemctl(p) }, DefaultTotemctl()},
}

func examplePath(name string) string { return filepath.Join("..", "deploy", name) }

// writeFile writes a TOML document to a fresh temporary file and returns its path.
func writeFile(t testing.TB, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.toml")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValidate(t *testing.T) {
	for _, v := range []interface{ Validate() error }{DefaultTotemd(), DefaultTotemhub(), DefaultTotemctl()} {
		if err := v.Validate(); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
	c, err := LoadTotemd("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Broker.CredentialsFile, filepath.Join("state", "credentials", "demo-01.json"); got != want {
		t.Errorf("derived credentials_file = %q, want %q", got, want)
	}
	if got, want := c.Devices.ReceiptDir, filepath.Join("state", "totemd", "receipts"); got != want {
		t.Errorf("derived receipt_dir = %q, want %q", got, want)
	}
}

func TestDerivedFollowsFile(t *testing.T) {
	p := writeFile(t, "state_dir = \"/var/lib/totemd\"\n[totem]\nid = \"lab-02\"\n")
	c, err := LoadTotemd(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Broker.CredentialsFile, filepath.Join("state", "credentials", "lab-02.json"); got != want {
		t.Errorf("credentials_file = %q, want %q", got, want)
	}
	if got, want := c.Devices.ReceiptDir, "/var/lib/totemd/receipts"; got != want {
		t.Errorf("receipt_dir = %q, want %q", got, want)
	}
	if c.Totem.ASL != "ASL Demo" {
		t.Errorf("missing key lost its default: asl = %q", c.Totem.ASL)
	}
}

// TestExamples loads each file in deploy/ and checks that it holds the
// defaults and every key.
func TestExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.file, func(t *testing.T) {
			got, err := ex.load(examplePath(ex.file))
			if err != nil {
				t.Fatal(err)
			}
			want, err := ex.load("")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("example differs from the defaults:\n got %+v\nwant %+v", got, want)
			}

			// Every key of the defaults appears in the example.
			b, err := os.ReadFile(examplePath(ex.file))
			if err != nil {
				t.Fatal(err)
			}
			d, err := toml.Marshal(ex.defaults)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := keys(t, b), keys(t, d); !slices.Equal(got, want) {
				t.Errorf("example keys %v, want %v", got, want)
			}
		})
	}
}

// keys lists the dotted keys of a TOML document, sorted.
func keys(t *testing.T, doc []byte) []string {
	t.Helper()
	var m map[string]any
	if err := toml.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out = append(out, prefix+k)
		}
	}
	walk("", m)
	slices.Sort(out)
	return out
}

func TestLoadErrorLine(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string // after "config: <path>:"
	}{
		{"unknown key", "[totem]\nid = \"a\"\n\n[broker]\nulr = \"mqtt://x\"\n", `5: unknown key "broker.ulr"`},
		{"unknown top key", "# c\nstate_dirr = \"x\"\n", `2: unknown key "state_dirr"`},
		{"unknown table", "[log]\nlevel = \"info\"\n[sesion]\nlang = \"en\"\n", `3: unknown key "sesion"`},
		{"wrong type", "[devices]\n\nreader = 3\n", "3: wrong type: integer, want string"},
		{"wrong table type", "log = \"x\"\n", "1: wrong type: string, want table"},
		{"bad duration", "[session]\nlang = \"en\"\nidle_timeout = 60\n", `3: duration "60"`},
		{"syntax", "[totem]\nid = \"a\"\nasl = \"unterminated\n", "3: "},
		{"syntax table", "\n\n[broker\n", "3: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, tt.doc)
			err := Load(p, DefaultTotemd())
			if err == nil {
				t.Fatal("no error")
			}
			if want := "config: " + p + ":" + tt.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q\nwant prefix %q", err, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.toml")
	if _, err := LoadTotemd(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("error %v does not name %s", err, p)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		load func(string) (any, error)
		doc  string
		key  string
	}{
		{"idle timeout", loadd, "[session]\nidle_timeout = \"1s\"", "session.idle_timeout"},
		{"maintenance idle short", loadd, "[session]\nmaintenance_idle = \"5s\"", "session.maintenance_idle"},
		{"maintenance idle long", loadd, "[session]\nmaintenance_idle = \"2h\"", "session.maintenance_idle"},
		{"idle warning", loadd, "[session]\nidle_timeout = \"30s\"\nidle_warning = \"30s\"", "session.idle_warning"},
		{"idle warning short", loadd, "[session]\nidle_warning = \"10ms\"", "session.idle_warning"},
		{"time zone", loadd, "[totem]\ntime_zone = \"Europe/Roma\"", "totem.time_zone"},
		{"time zone local", loadd, "[totem]\ntime_zone = \"Local\"", "totem.time_zone"},
		{"receipt link", loadd, "[totem]\nreceipt_link = \"https://asl.example/esito\"", "totem.receipt_link"},
		{"receipt link scheme", loadd, "[totem]\nreceipt_link = \"javascript:{protocollo}\"", "totem.receipt_link"},
		{"operator idle short", loadd, "[session]\noperator_idle_timeout = \"1s\"", "session.operator_idle_timeout"},
		{"operator idle long", loadd, "[session]\noperator_idle_timeout = \"1h\"", "session.operator_idle_timeout"},
		{"http url", loadd, "[broker]\nurl = \"http://x\"", "broker.url"},
		{"url without scheme", loadd, "[broker]\nurl = \"127.0.0.1:1883\"", "broker.url"},
		{"url with password", loadd, "[broker]\nurl = \"mqtt://u:p@x:1883\"", "broker.url"},
		{"url bad port", loadd, "[broker]\nurl = \"mqtt://x:70000\"", "broker.url"},
		{"reconnect", loadd, "[broker]\nreconnect_min = \"10s\"\nreconnect_max = \"5s\"", "broker.reconnect_max"},
		{"keep alive", loadd, "[broker]\nkeep_alive = \"0s\"", "broker.keep_alive"},
		{"id path", loadd, "[totem]\nid = \"../x\"", "totem.id"},
		{"id long", loadd, "[totem]\nid = \"" + strings.Repeat("a", 33) + "\"", "totem.id"},
		{"id empty", loadd, "[totem]\nid = \"\"", "totem.id"},
		{"panel", loadd, "[devices]\npanel = \"lcd\"", "devices.panel"},
		{"reader", loadd, "[devices]\nreader = \"scard\"", "devices.reader"},
		{"escpos without port", loadd, "[devices]\nprinter = \"escpos\"", "devices.escpos.port"},
		{"baud", loadd, "[devices.escpos]\nbaud = 7", "devices.escpos.baud"},
		{"hardware panel without pins", loadd, "[devices]\npanel = \"hardware\"", "devices.keypad.rows"},
		{"keypad cols", loadd, "[devices]\npanel = \"hardware\"\n[devices.keypad]\nrows = [\"a\",\"b\",\"c\",\"d\"]\ncols = [\"x\"]", "devices.keypad.cols"},
		{"display kind", loadd, "[devices.display]\nkind = \"crt\"", "devices.display.kind"},
		{"display addr", loadd, "[devices.display]\naddr = 200", "devices.display.addr"},
		{"lang", loadd, "[session]\nlang = \"de\"", "session.lang"},
		{"speaker kind", loadd, "[devices.speaker]\nkind = \"festival\"", "devices.speaker.kind"},
		{"speaker rate", loadd, "[devices.speaker]\nrate = 20", "devices.speaker.rate"},
		{"keyboard relative", loadd, "[devices]\nkeyboard = \"event3\"", "devices.keyboard"},
		{"keyboard layout", loadd, "[devices]\nkeyboard_layout = \"de\"", "devices.keyboard_layout"},
		{"negative ttl", loadd, "[sync]\nqueued_ttl = \"-1h\"", "sync.queued_ttl"},
		{"outbox size", loadd, "[outbox]\nmax_size_mb = 1", "outbox.max_size_mb"},
		{"outbox size huge", loadd, "[outbox]\nmax_size_mb = 2000000", "outbox.max_size_mb"},
		{"outbox pending", loadd, "[outbox]\nmax_pending = -1", "outbox.max_pending"},
		{"outbox alarm", loadd, "[outbox]\nalarm_at = 1.0", "outbox.alarm_at"},
		{"outbox alarm zero", loadd, "[outbox]\nalarm_at = 0.0", "outbox.alarm_at"},
		{"outbox kind", loadd, "[outbox]\ntelemetry_kinds = [\"Tele metry\"]", "outbox.telemetry_kinds"},
		{"outbox kind twice", loadd, "[outbox]\naudit_kinds = [\"audit\", \"audit\"]", "outbox.audit_kinds"},
		{"outbox retention", loadd, "[outbox]\nretention = \"1h\"", "outbox.retention"},
		{"outbox kind in both", loadd, "[outbox]\ntelemetry_kinds = [\"x\"]\naudit_kinds = [\"x\"]", "outbox.audit_kinds"},
		{"log level", loadd, "[log]\nlevel = \"trace\"", "log.level"},
		{"citizen retention", loadh, "[cms]\ncitizen_retention = \"12h\"", "cms.citizen_retention"},
		{"external no url", loadh, "[broker]\nembedded = false\ncredentials_file = \"hub.json\"", "broker.url"},
		{"external no credentials", loadh, "[broker]\nembedded = false\nurl = \"mqtts://b:8883\"", "broker.credentials_file"},
		{"dynsec no user", loadh, "[broker]\ndynsec = true\ndynsec_password_file = \"p\"", "broker.dynsec_user"},
		{"dynsec no password file", loadh, "[broker]\ndynsec = true\ndynsec_user = \"admin\"", "broker.dynsec_password_file"},
		{"listen", loadh, "[broker]\nlisten = \"1883\"", "broker.listen"},
		{"max packet", loadh, "[broker]\nmax_packet = 0", "broker.max_packet"},
		{"max connections", loadh, "[broker]\nmax_connections = 0", "broker.max_connections"},
		{"connect timeout", loadh, "[broker]\nconnect_timeout = \"0s\"", "broker.connect_timeout"},
		{"connect timeout long", loadh, "[broker]\nconnect_timeout = \"1h\"", "broker.connect_timeout"},
		{"memory limit", loadh, "memory_limit_mib = 10", "memory_limit_mib"},
		{"max connect packet", loadh, "[broker]\nmax_connect_packet = 100", "broker.max_connect_packet"},
		{"max connect packet over max packet", loadh, "[broker]\nmax_packet = 2048\nmax_connect_packet = 4096", "broker.max_connect_packet"},
		{"provision id", loadh, "[fleet]\nprovision = [\"ok\", \"a/b\"]", "fleet.provision"},
		{"provision twice", loadh, "[fleet]\nprovision = [\"a\", \"a\"]", "fleet.provision"},
		{"policy", loadh, "[cms]\npolicy = \"fse-2030\"", "cms.policy"},
		{"reissue counter id", loadh, "[fleet]\nreissue_counters = [\"a/b\"]", "fleet.reissue_counters"},
		{"reissue counter twice", loadh, "[fleet]\nreissue_counters = [\"a\", \"a\"]", "fleet.reissue_counters"},
		{"fse retries none", loadh, "[cms]\nfse_retries = 0", "cms.fse_retries"},
		{"fse retry interval short", loadh, "[cms]\nfse_retry_interval = \"10ms\"", "cms.fse_retry_interval"},
		{"fse retry interval long", loadh, "[cms]\nfse_retry_interval = \"48h\"", "cms.fse_retry_interval"},
		{"hub log format", loadh, "[log]\nformat = \"xml\"", "log.format"},
		{"ctl url", loadc, "[broker]\nurl = \"ws://x\"", "broker.url"},
		{"plain listen off loopback", loadh, "[broker]\nlisten = \"0.0.0.0:1883\"", "broker.listen"},
		{"plain listen all interfaces", loadh, "[broker]\nlisten = \":1883\"", "broker.listen"},
		{"tls listen", loadh, "[broker]\ntls_listen = \"8883\"", "broker.tls_listen"},
		{"http listen", loadh, "[http]\nlisten = \"9880\"", "http.listen"},
		{"http tls", loadh, "[http]\ntls = \"yes\"", "http.tls"},
		{"http tls files without key", loadh, "[http]\ntls = \"files\"\ncert_file = \"c.pem\"", "http.cert_file"},
		{"http cert without files", loadh, "[http]\ntls = \"hub\"\ncert_file = \"c.pem\"", "http.cert_file"},
		{"tls names empty", loadh, "[broker]\ntls_names = []", "broker.tls_names"},
		{"tls name", loadh, "[broker]\ntls_names = [\"bad name\"]", "broker.tls_names"},
		{"tls cert without key", loadh, "[broker]\ntls_cert_file = \"c.pem\"", "broker.tls_cert_file"},
		{"hub plain external", loadh, "[broker]\nembedded = false\nurl = \"mqtt://b.example:1883\"\ncredentials_file = \"h.json\"", "broker.url"},
		{"totemd plain remote", loadd, "[broker]\nurl = \"mqtt://hub.example:1883\"", "broker.url"},
		{"totemd cert without key", loadd, "[broker]\ncert_file = \"c.pem\"", "broker.cert_file"},
		{"ctl plain remote", loadc, "[broker]\nurl = \"tcp://10.0.0.5:1883\"", "broker.url"},
		{"ctl timeout", loadc, "timeout = \"0s\"", "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.load(writeFile(t, tt.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "config: "+tt.key+": ") {
				t.Errorf("error %q does not start with config: %s:", err, tt.key)
			}
		})
	}
}

// Plain TCP leaves the loopback only where allow_plain says so; TLS
// listens anywhere.
func TestAllowPlain(t *testing.T) {
	for _, doc := range []string{
		"[broker]\nlisten = \"0.0.0.0:1883\"\nallow_plain = true",
		"[broker]\nlisten = \"localhost:1883\"\ntls_listen = \"0.0.0.0:8883\"",
		"[broker]\nlisten = \"[::1]:1883\"\ntls_listen = \"\"",
	} {
		if _, err := LoadTotemhub(writeFile(t, doc)); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
	if _, err := LoadTotemd(writeFile(t, "[broker]\nurl = \"mqtt://hub.example:1883\"\nallow_plain = true")); err != nil {
		t.Error(err)
	}
	if _, err := LoadTotemctl(writeFile(t, "[broker]\nurl = \"mqtt://127.0.0.1:1883\"")); err != nil {
		t.Error(err)
	}
}

func loadd(p string) (any, error) { return LoadTotemd(p) }
func loadh(p string) (any, error) { return LoadTotemhub(p) }
func loadc(p string) (any, error) { return LoadTotemctl(p) }

func TestValidateListsEveryKey(t *testing.T) {
	c, _ := LoadTotemd("")
	c.Session.Lang = "xx"
	c.Log.Format = "yaml"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "session.lang") || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("error %v does not name both keys", err)
	}
}

func TestReissueCounter(t *testing.T) {
	if c, _ := LoadTotemd(""); c.Totem.ReissueCounter {
		t.Fatal("a totem is an enabled counter by default")
	}
	c, err := LoadTotemd(writeFile(t, "[totem]\nreissue_counter = true\n"))
	if err != nil || !c.Totem.ReissueCounter {
		t.Fatalf("%+v, %v", c, err)
	}
	p := writeFile(t, "[totem]\nreissue_counter = \"si\"\n")
	if _, err := LoadTotemd(p); err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Fatalf("a string for a bool: %v", err)
	}
}

// The outbox's bounds are on by default and a file may turn them off.
func TestOutboxQuota(t *testing.T) {
	c, _ := LoadTotemd("")
	if c.Outbox.MaxSizeMB == 0 || c.Outbox.MaxPending == 0 || c.Outbox.AlarmAt == 0 {
		t.Fatalf("no default bound: %+v", c.Outbox)
	}
	c, err := LoadTotemd(writeFile(t, "[outbox]\nmax_size_mb = 0\nmax_pending = 0\nalarm_at = 0.5\ntelemetry_kinds = [\"telemetry\"]\n"))
	if err != nil || c.Outbox.MaxSizeMB != 0 || c.Outbox.MaxPending != 0 || c.Outbox.AlarmAt != 0.5 ||
		len(c.Outbox.TelemetryKinds) != 1 {
		t.Fatalf("%+v, %v", c.Outbox, err)
	}
	p := writeFile(t, "[outbox]\nalarm_at = \"80%\"\n")
	if _, err := LoadTotemd(p); err == nil || !strings.Contains(err.Error(), p+":2:") || !strings.Contains(err.Error(), "want float") {
		t.Fatalf("a string for a float: %v", err)
	}
}

func TestExternalBroker(t *testing.T) {
	p := writeFile(t, "[broker]\nembedded = false\nlisten = \"\"\nurl = \"mqtts://b.example:8883\"\ncredentials_file = \"hub.json\"\n")
	if _, err := LoadTotemhub(p); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "totemd.toml")

	want, _ := LoadTotemd("")
	want.Totem.ID = "lab-02"
	want.Totem.Location = "Piano 2, \"sala\" d'attesa\n"
	want.Broker.ReconnectMax = Duration{90 * time.Minute}
	want.Session.Lang = "en"
	if err := Write(p, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTotemd(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}

	h, _ := LoadTotemhub("") // defaults, derived
	h.Fleet.Provision = []string{"a", "b", "c"}
	h.CMS.DemoCards = false
	hp := filepath.Join(dir, "totemhub.toml")
	if err := Write(hp, h); err != nil {
		t.Fatal(err)
	}
	gh, err := LoadTotemhub(hp)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gh, h) {
		t.Errorf("round trip:\n got %+v\nwant %+v", gh, h)
	}

	// Overwrite in place.
	want.Session.Lang = "it"
	if err := Write(p, want); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadTotemd(p); err != nil || got.Session.Lang != "it" {
		t.Errorf("after overwrite: lang %q, err %v", got.Session.Lang, err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"totemd.toml", "totemhub.toml"}) {
		t.Errorf("directory holds %v, want only the two written files", names)
	}
}

func TestWriteFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// Renaming over a directory fails after the temporary file is written.
	target := filepath.Join(dir, "conf.toml")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, DefaultTotemctl()); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary file left)", len(entries))
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour:         "720h",
		time.Minute:             "1m",
		90 * time.Minute:        "1h30m",
		time.Hour + time.Second: "1h0m1s",
		500 * time.Millisecond:  "500ms",
		0:                       "0s",
	} {
		b, _ := Duration{d}.MarshalText()
		if string(b) != want {
			t.Errorf("%v marshals as %q, want %q", d, b, want)
		}
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back.Duration != d {
			t.Errorf("%q unmarshals as %v, %v; want %v", b, back.Duration, err, d)
		}
	}
}

func FuzzLoad(f *testing.F) {
	for _, ex := range examples {
		b, err := os.ReadFile(examplePath(ex.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"[broker]\nulr = \"x\"\n",
		"[broker]\nkeep_alive = 5\n",
		"[totem\nid = \"x\"\n",
		"log = 3\n",
		"[session]\nidle_timeout = \"1s\"\n",
		"[[totem]]\nid = \"a\"\n",
		"totem = { id = \"x\", asl = \"y\" }\n",
		"[broker]\nurl = \"mqtt://[::1]:1883\"\nreconnect_max = \"1ns\"\n",
		"\xff\xfe[log]\nlevel = '''\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir() // fuzz calls in one process run one at a time
	p := filepath.Join(dir, "totemd.toml")
	f.Fuzz(func(t *testing.T, doc []byte) {
		if err := os.WriteFile(p, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		c := DefaultTotemd()
		if err := Load(p, c); err != nil {
			return
		}
		// Whatever loads must survive marshalling and loading unchanged.
		b, err := toml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		again, err := LoadTotemd(p)
		if err != nil {
			t.Fatalf("marshalled config does not load: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, c)
		}
	})
}

func TestConsoleKeys(t *testing.T) {
	good := "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	c, _ := LoadTotemd("")
	c.ConsoleKeys = []ConsoleKey{{ID: "tech-1", Role: "technician", PublicKey: good}, {ID: "ops-1", Role: "ops", PublicKey: good}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ConsoleKey{
		{ID: "a/b", Role: "ops", PublicKey: good},
		{ID: "x", Role: "root", PublicKey: good},
		{ID: "x", Role: "ops", PublicKey: "AAAA"},
		{ID: "tech-1", Role: "ops", PublicKey: good}, // listed twice
	} {
		c.ConsoleKeys = []ConsoleKey{{ID: "tech-1", Role: "technician", PublicKey: good}, bad}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "console_keys[1]") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	ctl, _ := LoadTotemctl("")
	if ctl.KeyFile != "state/credentials/console.key" {
		t.Errorf("key_file default %q", ctl.KeyFile)
	}
}

// An empty file (or one of comments and table headers only) is refused:
// it would silently run a deployment on the demo defaults.
func TestEmptyFileRefused(t *testing.T) {
	for _, doc := range []string{"", "\n \t\n", "# totemd.toml\n# to be filled\n", "[totem]\n# id = \"x\"\n[broker]\n"} {
		p := writeFile(t, doc)
		for _, load := range []func(string) (any, error){loadd, loadh, loadc} {
			if _, err := load(p); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), p) {
				t.Errorf("%q: %v, want ErrEmpty naming the file", doc, err)
			}
		}
	}
	if _, err := LoadTotemctl(writeFile(t, "# one setting is enough\ntimeout = \"5s\"\n")); err != nil {
		t.Fatal(err)
	}
}

// A key or table defined twice is an error naming the file and the line
// of the second definition (go-toml names neither).
func TestDuplicateKeyLine(t *testing.T) {
	for doc, want := range map[string]string{
		"state_dir = \"a\"\n\nstate_dir = \"b\"\n":                               `:3: key "state_dir" defined twice (first at line 1)`,
		"[log]\nlevel = \"info\"\nformat = \"text\"\nlevel = \"debug\"\n":        `:4: key "level" defined twice (first at line 2)`,
		"[broker]\nurl = \"mqtt://a:1\"\n\n[broker]\nkeep_alive = \"9s\"\n":      `:4: table [broker] defined twice (first at line 1)`,
		"[totem]\nid = \"t-1\"\n[log]\nlevel = \"info\"\n[totem]\nasl = \"x\"\n": `:5: table [totem] defined twice (first at line 1)`,
	} {
		p := writeFile(t, doc)
		if _, err := LoadTotemd(p); err == nil || !strings.Contains(err.Error(), p+want) {
			t.Errorf("%q: %v, want %s", doc, err, p+want)
		}
	}
	// The same key in two tables, or in two elements of an array of
	// tables, is no duplicate.
	p := writeFile(t, "[broker]\nurl = \"mqtt://a:1\"\n[log]\nlevel = \"info\"\n[[console_keys]]\nid = \"a\"\nrole = \"ops\"\npublic_key = \"x\"\n[[console_keys]]\nid = \"b\"\n")
	if err := duplicate(p, []byte(mustRead(t, p))); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStore(t *testing.T) {
	c, err := LoadTotemhub(writeFile(t, "[store]\nurl = \"postgres://hub:s3cret@db.example/totem\"\npool_size = 20\nstatement_timeout = \"5s\"\npartition = true\n"))
	if err != nil || c.Store.URL == "" || c.Store.PoolSize != 20 || c.Store.StatementTimeout.Duration != 5*time.Second || !c.Store.Partition {
		t.Fatalf("%+v, %v", c.Store, err)
	}
	for doc, want := range map[string]string{
		"[store]\nurl = \"mysql://hub:s3cret@db/totem\"\n": "store.url",
		"[store]\nurl = \"::s3cret\"\n":                    "store.url",
		"[store]\npool_size = 0\n":                         "store.pool_size",
		"[store]\nstatement_timeout = \"1ms\"\n":           "store.statement_timeout",
		"[store]\nurll = \"\"\n":                           "urll",
		"[store]\npartition = true\n":                      "store.partition",
	} {
		_, err := LoadTotemhub(writeFile(t, doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %s", doc, err, want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the password in the error: %v", doc, err)
		}
	}
}

// Receipts are in Europe/Rome unless configured, a link template is taken;
// a short idle_timeout alone still loads (idle_warning 0: a quarter of it).
func TestTimeZoneAndReceiptLink(t *testing.T) {
	c, err := LoadTotemd("")
	if err != nil || c.Totem.TimeZone != "Europe/Rome" || c.Totem.ReceiptLink != "" || c.Session.IdleWarning.Duration != 0 {
		t.Fatalf("defaults %q %q %v %v", c.Totem.TimeZone, c.Totem.ReceiptLink, c.Session.IdleWarning, err)
	}
	c, err = LoadTotemd(writeFile(t, "[totem]\ntime_zone = \"Europe/Berlin\"\nreceipt_link = \"https://asl.example/e?p={protocollo}\"\ntown = \"Lucca\"\n"))
	if err != nil || c.Totem.TimeZone != "Europe/Berlin" || c.Totem.ReceiptLink != "https://asl.example/e?p={protocollo}" || c.Totem.Town != "Lucca" {
		t.Fatalf("%+v %v", c.Totem, err)
	}
	if c, err := LoadTotemd(writeFile(t, "[session]\nidle_timeout = \"5s\"\n")); err != nil || c.Session.IdleWarning.Duration != 0 {
		t.Fatalf("idle_timeout 5s alone: %v", err)
	}
}

// The operator session left with the slot empty closes after 2 minutes by
// default (it was 5, fixed), and a deployment sets its own.
func TestOperatorIdleTimeout(t *testing.T) {
	c, err := LoadTotemd("")
	if err != nil || c.Session.OperatorIdleTimeout.Duration != 2*time.Minute {
		t.Fatalf("default %v, %v", c.Session.OperatorIdleTimeout, err)
	}
	path := filepath.Join(t.TempDir(), "totemd.toml")
	if err := os.WriteFile(path, []byte("[session]\noperator_idle_timeout = \"45s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = LoadTotemd(path); err != nil || c.Session.OperatorIdleTimeout.Duration != 45*time.Second {
		t.Fatalf("file %v, %v", c.Session.OperatorIdleTimeout, err)
	}
}
