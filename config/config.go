// Package config gives the typed configuration of totemd, totemhub and
// totemctl: structs filled with defaults, loaded strictly from TOML (an
// unknown key is an error naming the file and the line), checked by
// Validate and written atomically.
//
// Relative paths in a configuration are relative to the working directory
// of the program that loads it.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/aslcns/totem/internal/tomldata"
)

// Duration is a time.Duration written in TOML as a string ("5s", "2m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a string like \"500ms\", \"30s\" or \"2m\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler. It writes "720h" and "1m"
// rather than "720h0m0s" and "1m0s".
func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return []byte(s), nil
}

// Log is the logging section shared by every program.
type Log struct {
	Level  string `toml:"level"`  // debug|info|warn|error
	Format string `toml:"format"` // text|json
}

// ConsoleKey is a console's public key a totem or the hub trusts to sign
// commands (totemctl keygen prints one).
type ConsoleKey struct {
	ID        string `toml:"id"`         // the key id in every command it signs
	Role      string `toml:"role"`       // technician|ops: the highest role it may sign as
	PublicKey string `toml:"public_key"` // standard base64 of the Ed25519 public key
}

// TLSClient is a client's TLS to the broker, for an mqtts:// URL, and its
// consent to a plain one.
type TLSClient struct {
	// CAFile is the CA certificate that vouches for the broker (the hub
	// writes its own as ca.pem beside the credentials it provisions);
	// "system" = the system's roots, for a broker with a public certificate.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile: the client's certificate for brokers that
	// ask for one (mutual TLS); "" = none.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// AllowPlain lets a plain mqtt:// URL name another host than the
	// loopback: credentials and citizens' data would cross the network
	// in clear.
	AllowPlain bool `toml:"allow_plain"`
}

// Totemd is totemd's configuration.
type Totemd struct {
	Totem struct {
		ID       string `toml:"id"`
		ASL      string `toml:"asl"`
		Location string `toml:"location"`
		// ReissueCounter: the totem stands at an ASL counter enabled to
		// reissue cards (an operator does it); otherwise a reissue asked
		// at the totem is refused with where to go.
		ReissueCounter bool `toml:"reissue_counter"`
		// Town is the ASL's town, printed as the place of the forms
		// signed at the totem; empty leaves a blank to fill by hand.
		Town string `toml:"town"`
		// TimeZone is the zone of the times printed on receipts (IANA
		// name): the citizen's, not the host's clock zone.
		TimeZone string `toml:"time_zone"`
		// ReceiptLink, when set, is the ASL's page the receipts' QR code
		// carries, {protocollo} replaced by the protocol number; empty,
		// the QR carries the protocol number as text.
		ReceiptLink string `toml:"receipt_link"`
	} `toml:"totem"`
	StateDir string `toml:"state_dir"`
	// ConsoleKeysFile is a JSON file of more trusted console keys (the
	// demo hub writes its console's there); a missing file adds none.
	// "" = console_keys.json beside broker.credentials_file.
	ConsoleKeysFile string       `toml:"console_keys_file"`
	ConsoleKeys     []ConsoleKey `toml:"console_keys"`
	Broker          struct {
		URL             string   `toml:"url"`
		CredentialsFile string   `toml:"credentials_file"` // "" = state/credentials/<totem id>.json
		TLSClient                // ca_file "" = ca.pem beside credentials_file
		KeepAlive       Duration `toml:"keep_alive"`
		ReconnectMin    Duration `toml:"reconnect_min"`
		ReconnectMax    Duration `toml:"reconnect_max"`
	} `toml:"broker"`
	Sync struct {
		// ResultWait is how long the citizen waits for the protocol
		// number before getting a provisional receipt.
		ResultWait        Duration `toml:"result_wait"`
		TelemetryInterval Duration `toml:"telemetry_interval"`
		QueuedTTL         Duration `toml:"queued_ttl"` // expiry of queueable operations
	} `toml:"sync"`
	// Outbox bounds the durable queue of operations; a bound of 0 means
	// none. Near a bound the totem raises an alarm; at it, telemetry kinds
	// are shed and then citizens' operations refused (nothing stored).
	Outbox struct {
		MaxSizeMB      int      `toml:"max_size_mb"`     // the database file, MiB
		MaxPending     int      `toml:"max_pending"`     // entries waiting for a final result
		AlarmAt        float64  `toml:"alarm_at"`        // fraction of a bound that raises the alarm
		TelemetryKinds []string `toml:"telemetry_kinds"` // kinds shed first under pressure
		AuditKinds     []string `toml:"audit_kinds"`     // kinds never shed, yielding to citizens'
		// Retention: a settled operation (final result received) is
		// purged from the outbox, payload and all, this long after it
		// settled; the send log keeps a summary without the citizen's
		// data, the hub's send log its entry.
		Retention Duration `toml:"retention"`
	} `toml:"outbox"`
	Devices struct {
		Reader     string `toml:"reader"`      // sim|pcsc
		Printer    string `toml:"printer"`     // sim|escpos
		Panel      string `toml:"panel"`       // auto|terminal|none|hardware
		ReceiptDir string `toml:"receipt_dir"` // "" = <state_dir>/receipts
		PCSC       struct {
			Reader string `toml:"reader"` // reader name; "" = the first one
		} `toml:"pcsc"`
		ESCPOS struct {
			Port    string `toml:"port"`    // serial device, e.g. /dev/ttyUSB0
			Baud    int    `toml:"baud"`    // 0 = the profile's
			Profile string `toml:"profile"` // printer model profile
		} `toml:"escpos"`
		Keypad struct {
			Rows []string `toml:"rows"` // GPIO names, top row first
			Cols []string `toml:"cols"` // GPIO names, left column first (3 or 4)
		} `toml:"keypad"`
		// Speaker: the speech output of the screens (EN 301 549 5.1.3).
		Speaker struct {
			Kind string `toml:"kind"` // espeak|none
			Rate int    `toml:"rate"` // words per minute, 80-300
		} `toml:"speaker"`
		// Keyboard is the Linux input device of a USB keyboard an
		// operator may plug in for assisted mode (/dev/input/event*);
		// "" = none.
		Keyboard       string `toml:"keyboard"`
		KeyboardLayout string `toml:"keyboard_layout"` // it|us
		Display        struct {
			Kind string `toml:"kind"`    // lcd|oled
			Bus  string `toml:"i2c_bus"` // "" = the first I2C bus
			Addr int    `toml:"addr"`    // 0 = the driver's default (0x27 LCD, 0x3C OLED)
			ROM  string `toml:"rom"`     // LCD character ROM: a00|a02
		} `toml:"display"`
	} `toml:"devices"`
	Session struct {
		IdleTimeout Duration `toml:"idle_timeout"`
		// MaintenanceIdle ends a technician's maintenance session at the
		// panel nobody touches.
		MaintenanceIdle Duration `toml:"maintenance_idle"`
		// IdleWarning is how long before the end of an idle session the
		// panel asks whether more time is needed; 0 is a quarter of
		// IdleTimeout.
		IdleWarning Duration `toml:"idle_warning"`
		// OperatorIdleTimeout ends an operator's session (assisted mode)
		// after this long with the slot empty and no key pressed: the
		// operator card is out, and whoever finds the totem would find it
		// still open.
		OperatorIdleTimeout Duration `toml:"operator_idle_timeout"`
		Lang                string   `toml:"lang"` // it|en
	} `toml:"session"`
	// Update: over-the-air updates from the hub (sync/update/agent).
	Update struct {
		Enabled bool `toml:"enabled"`
		// Arch is the Debian architecture bundles must be built for;
		// "" = the one this binary was built for.
		Arch string `toml:"arch"`
		// HealthWindow is how long a new version has to become healthy
		// (ready, uplink connected, telemetry sent) before it is rolled
		// back.
		HealthWindow Duration `toml:"health_window"`
		// Quiet is how long the totem must be without card or key before
		// an update may restart it; at least session.idle_timeout.
		Quiet Duration `toml:"quiet"`
	} `toml:"update"`
	Log Log `toml:"log"`
}

// Totemhub is totemhub's configuration.
type Totemhub struct {
	StateDir string `toml:"state_dir"`
	// MemoryLimitMiB is the Go runtime's soft memory limit (GOMEMLIMIT,
	// which wins when set): the collector runs more often rather than
	// let the heap pass it. The hub's live data is about 45 MB for 1 000
	// totems connected, storm or not (the ingest holds the totems back
	// rather than queue their operations), and 25 MB of goroutine
	// stacks; the process's resident set is the limit plus about 35 MB
	// of its binary and bbolt's mapped files. Without a limit the garbage
	// of a storm (GC percent 400, see cmd/internal/cli) took it to
	// 260 MB. Raise it with the fleet, about 70 MiB per 1 000 totems: a
	// limit under the live data makes the collector run all the time.
	// 0 = the programs' default.
	MemoryLimitMiB int `toml:"memory_limit_mib"`
	// ConsoleKeysFile and ConsoleKeys: the console keys trusted for the
	// hub's own commands, as in totemd. "" = console_keys.json in
	// fleet.credentials_dir, where the hub writes the key of the console
	// it provisions.
	ConsoleKeysFile string       `toml:"console_keys_file"`
	ConsoleKeys     []ConsoleKey `toml:"console_keys"`
	Broker          struct {
		Embedded bool `toml:"embedded"` // run the embedded broker
		// Listen is the embedded broker's plain TCP listener, which the
		// hub's own ingest uses: on the loopback, unless allow_plain.
		Listen string `toml:"listen"`
		// TLSListen is the embedded broker's TLS listener, "" = none.
		// Its certificate is tls_cert_file/tls_key_file when set (the
		// ASL's own), else one the hub's private CA (created in
		// state_dir at the first start) issues for TLSNames and renews.
		TLSListen   string   `toml:"tls_listen"`
		TLSNames    []string `toml:"tls_names"`
		TLSCertFile string   `toml:"tls_cert_file"`
		TLSKeyFile  string   `toml:"tls_key_file"`

		URL             string `toml:"url"`              // external broker, required when not embedded
		CredentialsFile string `toml:"credentials_file"` // hub's credentials on the external broker
		// DynSec: the external broker is mosquitto with its
		// dynamic-security plugin, which the hub keeps in line with its
		// registry (sync/dynsec) as the admin DynSecUser, whose password
		// is the first line of DynSecPasswordFile (0600).
		DynSec             bool   `toml:"dynsec"`
		DynSecUser         string `toml:"dynsec_user"`
		DynSecPasswordFile string `toml:"dynsec_password_file"`
		// TLS to the external broker; allow_plain also lets the embedded
		// broker's plain listener leave the loopback. ca_file "" = the
		// system's roots.
		TLSClient
		MaxPacket int `toml:"max_packet"` // bytes
		// Limits of the embedded broker against clients that never
		// authenticate: connections open at once (one more is closed at
		// once), the time a connection has to send its CONNECT, and the
		// largest CONNECT read (the only packet read before authentication).
		MaxConnections   int      `toml:"max_connections"`
		ConnectTimeout   Duration `toml:"connect_timeout"`
		MaxConnectPacket int      `toml:"max_connect_packet"` // bytes
	} `toml:"broker"`
	Fleet struct {
		CredentialsDir string   `toml:"credentials_dir"` // where provisioned credentials are written
		Provision      []string `toml:"provision"`       // totems provisioned at start (demo)
		// Console is a console provisioned at start, "" = none: its broker
		// credentials, and an ops signing key (<console>.key, 0600) the
		// hub and the totems reading console_keys_file trust.
		Console string `toml:"console"`
		// EnrollValidity is how long an enrollment code of totemctl enroll
		// can be exchanged for a totem's credentials (seed 000: 7 days).
		EnrollValidity Duration `toml:"enroll_validity"`
		// A totem's broker secret lasts FirstValidity when enrolled or
		// provisioned, Validity after each rotation (seed 000: 240 and 90
		// days); the totem rotates it RotateBefore its expiry.
		FirstValidity Duration `toml:"first_validity"`
		Validity      Duration `toml:"validity"`
		RotateBefore  Duration `toml:"rotate_before"`
		// TelemetryInterval is the totems' sync.telemetry_interval: the
		// fleet registry shows a totem offline ("silent") after 3 of them
		// without a message from it.
		TelemetryInterval Duration `toml:"telemetry_interval"`
		// ReissueCounters are the totems that stand at ASL counters
		// enabled to reissue cards: the hub, not the totem, tells the CMS
		// (a totem's reissue_counter only shows the operator the flow).
		ReissueCounters []string `toml:"reissue_counters"`
	} `toml:"fleet"`
	CMS struct {
		Policy    string `toml:"policy"` // fse-2020|fse-2016
		DemoCards bool   `toml:"demo_cards"`
		// How long the hub's send log keeps the repeated transmissions of
		// applied operations (duplicates), and its refusals (sequence
		// gaps, SEQ_REUSED), after their last repeat. The applied
		// operations' own entries are the audit trail, kept.
		SendLogRetention Duration `toml:"sendlog_retention"`
		RefusalRetention Duration `toml:"refusal_retention"`
		// CitizenRetention: how long the reference CMS keeps the
		// citizen's data an operation left beside the card's record —
		// the notifications (second halves of PIN and PUK, the contact)
		// and the results kept for duplicates (first halves, CIP, a
		// card's history) — before purging them.
		CitizenRetention Duration `toml:"citizen_retention"`
		// FSE creation (seed 002): after a technical error the CMS tries
		// again every fse_retry_interval, and opens a second-level
		// helpdesk ticket after fse_retries attempts.
		FSERetries       int      `toml:"fse_retries"`
		FSERetryInterval Duration `toml:"fse_retry_interval"`
	} `toml:"cms"`
	// Audit is the central audit of people's actions (sync/audit).
	Audit struct {
		// RetentionMonths: records older than this many calendar months
		// are purged (an anchor keeps the chain verifiable); at least 6,
		// as the Garante asks of administrators' logs.
		RetentionMonths int `toml:"retention_months"`
	} `toml:"audit"`
	// Store is where the hub keeps its state: "" url = bbolt files in
	// state_dir (one process); a postgres:// URL = a PostgreSQL database
	// several hub processes share (cms/pgstore): the hub's CMS, after
	// `totemhub migrate`.
	Store struct {
		URL string `toml:"url"`
		// PoolSize is the most connections a hub process opens.
		PoolSize int `toml:"pool_size"`
		// StatementTimeout ends a statement that runs longer (the batch is
		// rolled back and refused; the totems send again); 0 = the
		// server's setting.
		StatementTimeout Duration `toml:"statement_timeout"`
		// Partition splits the totems between the hub processes on an
		// external broker (cms/pgstore leases.go): each applies only
		// the totems of the buckets it holds, instead of the broker's
		// shared subscription handing a totem's operations to all of
		// them. Needs url; ignored on the embedded broker (one hub).
		Partition bool `toml:"partition"`
	} `toml:"store"`
	HTTP struct {
		// Listen is the hub's HTTP listener for ops (/healthz, /readyz,
		// /metrics), host:port; "" = none. Plain HTTP: it serves
		// counters and the fleet's presence, no citizen's data, and the
		// default keeps it on the loopback for a local Prometheus.
		Listen string `toml:"listen"`
		// TLS serves the listener over HTTPS: "" = plain HTTP (the ops
		// console is then served only on the loopback), "hub" = a
		// certificate from the hub's own CA for broker.tls_names, "files"
		// = cert_file and key_file (the ASL's own, read again when they
		// change).
		TLS      string `toml:"tls"`
		CertFile string `toml:"cert_file"`
		KeyFile  string `toml:"key_file"`
	} `toml:"http"`
	Log Log `toml:"log"`
}

// MinAuditRetentionMonths is the shortest audit.retention_months: the
// Garante asks that administrators' logs be kept at least six months.
const MinAuditRetentionMonths = 6

// Totemctl is totemctl's configuration.
type Totemctl struct {
	// KeyFile is the console's private signing key (mode 0600; totemctl
	// keygen writes one). "" = broker.credentials_file with .key for .json.
	KeyFile string `toml:"key_file"`
	Broker  struct {
		URL             string `toml:"url"`
		CredentialsFile string `toml:"credentials_file"`
		TLSClient              // ca_file "" = ca.pem beside credentials_file
	} `toml:"broker"`
	Timeout Duration `toml:"timeout"`
}

// DefaultBrokerURL is the broker totemd and totemctl use by default: the
// hub's TLS listener on the loopback (the demo).
const DefaultBrokerURL = "mqtts://127.0.0.1:8883"

func defaultLog() Log { return Log{Level: "info", Format: "text"} }

// DefaultTotemd returns totemd's defaults. Broker.CredentialsFile and
// Devices.ReceiptDir are left empty: loading derives them from the totem
// id and the state directory.
func DefaultTotemd() *Totemd {
	c := &Totemd{StateDir: "state/totemd", ConsoleKeys: []ConsoleKey{}, Log: defaultLog()}
	c.Totem.ID = "demo-01"
	c.Totem.ASL = "ASL Demo"
	c.Totem.Location = "Atrio principale"
	c.Totem.TimeZone = "Europe/Rome"
	c.Broker.URL = DefaultBrokerURL
	c.Broker.KeepAlive = Duration{30 * time.Second}
	c.Broker.ReconnectMin = Duration{500 * time.Millisecond}
	c.Broker.ReconnectMax = Duration{30 * time.Second}
	c.Sync.ResultWait = Duration{5 * time.Second}
	c.Sync.TelemetryInterval = Duration{30 * time.Second}
	c.Sync.QueuedTTL = Duration{720 * time.Hour}
	c.Outbox.MaxSizeMB = 256
	c.Outbox.MaxPending = 100000
	c.Outbox.AlarmAt = 0.8
	c.Outbox.TelemetryKinds = []string{}
	c.Outbox.AuditKinds = []string{}
	c.Outbox.Retention = Duration{720 * time.Hour}
	c.Devices.Reader = "sim"
	c.Devices.Printer = "sim"
	c.Devices.Panel = "auto"
	c.Devices.ESCPOS.Profile = "tm-t20"
	c.Devices.Keypad.Rows = []string{}
	c.Devices.Keypad.Cols = []string{}
	c.Devices.Display.Kind = "lcd"
	c.Devices.KeyboardLayout = "it"
	c.Devices.Speaker.Kind = "espeak"
	c.Devices.Speaker.Rate = 150
	c.Devices.Display.ROM = "a00"
	c.Session.IdleTimeout = Duration{60 * time.Second}
	c.Session.MaintenanceIdle = Duration{3 * time.Minute}
	c.Session.OperatorIdleTimeout = Duration{2 * time.Minute}
	c.Session.Lang = "it"
	c.Update.HealthWindow = Duration{5 * time.Minute}
	c.Update.Quiet = Duration{2 * time.Minute}
	return c
}

// DefaultTotemhub returns totemhub's defaults.
func DefaultTotemhub() *Totemhub {
	c := &Totemhub{StateDir: "state/totemhub", MemoryLimitMiB: 96, ConsoleKeys: []ConsoleKey{}, Log: defaultLog()}
	c.Broker.Embedded = true
	c.Broker.Listen = "127.0.0.1:1883"
	c.Broker.TLSListen = "127.0.0.1:8883"
	c.HTTP.Listen = "127.0.0.1:9880"
	c.Broker.TLSNames = []string{"localhost", "127.0.0.1"}
	c.Broker.MaxPacket = 262144
	c.Broker.MaxConnections = 4096
	c.Broker.ConnectTimeout = Duration{5 * time.Second}
	c.Broker.MaxConnectPacket = 4096
	c.Fleet.CredentialsDir = "state/credentials"
	c.Fleet.Provision = []string{"demo-01"}
	c.Fleet.Console = "console"
	c.Fleet.EnrollValidity = Duration{7 * 24 * time.Hour}
	c.Fleet.FirstValidity = Duration{240 * 24 * time.Hour}
	c.Fleet.Validity = Duration{90 * 24 * time.Hour}
	c.Fleet.RotateBefore = Duration{14 * 24 * time.Hour}
	c.Fleet.TelemetryInterval = Duration{30 * time.Second}
	c.Fleet.ReissueCounters = []string{}
	c.CMS.Policy = "fse-2020"
	c.CMS.DemoCards = true
	c.CMS.SendLogRetention = Duration{4380 * time.Hour}
	c.CMS.CitizenRetention = Duration{2160 * time.Hour}
	c.CMS.RefusalRetention = Duration{720 * time.Hour}
	c.Audit.RetentionMonths = MinAuditRetentionMonths
	c.CMS.FSERetries = 5
	c.CMS.FSERetryInterval = Duration{time.Minute}
	c.Store.PoolSize = 8
	c.Store.StatementTimeout = Duration{30 * time.Second}
	return c
}

// DefaultTotemctl returns totemctl's defaults.
func DefaultTotemctl() *Totemctl {
	c := &Totemctl{Timeout: Duration{3 * time.Second}}
	c.Broker.URL = DefaultBrokerURL
	c.Broker.CredentialsFile = "state/credentials/console.json"
	return c
}

// derive fills the defaults that depend on other keys.
func (c *Totemd) derive() {
	if c.Broker.CredentialsFile == "" {
		c.Broker.CredentialsFile = filepath.Join("state", "credentials", c.Totem.ID+".json")
	}
	if c.Devices.ReceiptDir == "" {
		c.Devices.ReceiptDir = filepath.Join(c.StateDir, "receipts")
	}
	if c.ConsoleKeysFile == "" {
		c.ConsoleKeysFile = filepath.Join(filepath.Dir(c.Broker.CredentialsFile), "console_keys.json")
	}
	if c.Broker.CAFile == "" {
		c.Broker.CAFile = filepath.Join(filepath.Dir(c.Broker.CredentialsFile), "ca.pem")
	}
}

func (c *Totemhub) derive() {
	if c.ConsoleKeysFile == "" {
		c.ConsoleKeysFile = filepath.Join(c.Fleet.CredentialsDir, "console_keys.json")
	}
}

func (c *Totemctl) derive() {
	if c.KeyFile == "" {
		c.KeyFile = strings.TrimSuffix(c.Broker.CredentialsFile, ".json") + ".key"
	}
	if c.Broker.CAFile == "" {
		c.Broker.CAFile = filepath.Join(filepath.Dir(c.Broker.CredentialsFile), "ca.pem")
	}
}

// finish fills derived defaults, when v has any, and validates v.
func finish(v interface{ Validate() error }) error {
	if d, ok := v.(interface{ derive() }); ok {
		d.derive()
	}
	return v.Validate()
}

// Load reads the TOML file at path into v (a *Totemd, *Totemhub or
// *Totemctl previously filled with defaults) strictly: an unknown key, a
// type error or a syntax error is an error naming the file and the line,
// such as
//
//	config: /etc/totem/totemd.toml:12: unknown key "broker.ulr"
//
// Missing keys keep their value. Then the derived defaults are filled and
// v is validated.
func Load(path string, v interface{ Validate() error }) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return loadBytes(path, b, v)
}

// loadBytes is Load of the document b, read from path.
func loadBytes(path string, b []byte, v interface{ Validate() error }) error {
	if err := settings(path, b); err != nil {
		return err
	}
	if err := tomldata.Decode("config: "+path, b, v); err != nil {
		return err
	}
	return finish(v)
}

// ErrEmpty is returned by Load for a file that sets nothing.
var ErrEmpty = errors.New("sets nothing")

// settings refuses a file without a single key = value: an empty file
// (truncated by a failed copy, or a template never filled) would otherwise
// run a deployment on the demo defaults — a demo totem id, demo cards,
// provisioning at start — without a word. A demo runs without --config.
// Syntax errors are left to the decoder, which names their line.
func settings(path string, b []byte) error {
	var p unstable.Parser
	p.Reset(b)
	for p.NextExpression() {
		if p.Expression().Kind == unstable.KeyValue {
			return nil
		}
	}
	if p.Error() != nil {
		return nil
	}
	return fmt.Errorf("config: %s: %w (empty, or only comments and table headers); "+
		"write the settings that differ from the defaults, or run without --config for the demo defaults", path, ErrEmpty)
}

// duplicate is tomldata.Duplicate with the configuration's prefix.
func duplicate(path string, b []byte) error { return tomldata.Duplicate("config: "+path, b) }

// LoadTotemd loads totemd's configuration from path over the defaults;
// path "" gives the defaults. The result is derived and validated.
func LoadTotemd(path string) (*Totemd, error) { return loadOver(path, DefaultTotemd()) }

// LoadTotemhub loads totemhub's configuration like LoadTotemd.
func LoadTotemhub(path string) (*Totemhub, error) { return loadOver(path, DefaultTotemhub()) }

// LoadTotemctl loads totemctl's configuration like LoadTotemd.
func LoadTotemctl(path string) (*Totemctl, error) { return loadOver(path, DefaultTotemctl()) }

func loadOver[T interface{ Validate() error }](path string, c T) (T, error) {
	var err error
	if path == "" {
		err = finish(c)
	} else {
		err = Load(path, c)
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return c, nil
}

// Write writes v as TOML to path atomically: it writes a temporary file in
// the same directory, syncs it and renames it over path. The file is
// readable by everyone (0644): configuration holds no secrets.
func Write(path string, v any) error {
	b, err := toml.Marshal(v)
	if err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return writeAtomic(path, b, 0o644)
}
