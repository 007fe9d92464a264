package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	// The receipts' zone (totem.time_zone) loads on a board without
	// /usr/share/zoneinfo: Go's copy of the tz database is embedded.
	_ "time/tzdata"
)

// problems collects validation errors, each naming its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
}

func (p *problems) nonEmpty(key, v string) {
	if strings.TrimSpace(v) == "" {
		p.add(key, "must not be empty")
	}
}

func (p *problems) oneOf(key, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		p.add(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func (p *problems) atLeast(key string, d Duration, least time.Duration) {
	if d.Duration < least {
		p.add(key, "%v is shorter than %v", d.Duration, least)
	}
}

// tlsNameRE matches a DNS name a certificate can carry.
var tlsNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (p *problems) id(key, v string) {
	if !idRE.MatchString(v) {
		p.add(key, "%q must be 1-32 characters among A-Z a-z 0-9 _ -", v)
	}
}

// brokerURL checks an MQTT broker URL such as mqtt://host:1883.
// Credentials belong in the credentials file, not in the URL.
func (p *problems) brokerURL(key, v string) {
	u, err := url.Parse(v)
	switch {
	case err != nil || u.Hostname() == "":
		p.add(key, "%q is not a URL like mqtt://host:1883", v)
	case !slices.Contains([]string{"mqtt", "tcp", "tls", "mqtts"}, u.Scheme):
		p.add(key, "scheme %q is not one of mqtt, tcp, tls, mqtts", u.Scheme)
	case u.User != nil:
		p.add(key, "must not hold credentials: use credentials_file")
	case u.Port() != "" && !validPort(u.Port(), 1):
		p.add(key, "port %q is not 1-65535", u.Port())
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		p.add(key, "%q must have no path, query or fragment", v)
	}
}

// plainURL refuses a plain broker URL to another host than the loopback
// unless allow_plain says so.
func (p *problems) plainURL(key, v string, t TLSClient) {
	u, err := url.Parse(v)
	if err != nil || t.AllowPlain || (u.Scheme != "mqtt" && u.Scheme != "tcp") {
		return
	}
	if !Loopback(u.Hostname()) {
		p.add(key, "plain %q to another host than the loopback sends passwords and citizens' data in clear: use mqtts:// (or set allow_plain = true)", v)
	}
}

// Loopback reports whether host (a name or an address) is the loopback.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (p *problems) tlsClient(t TLSClient) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add("broker.cert_file", "cert_file and key_file go together")
	}
}

func validPort(s string, least int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= least && n <= 65535
}

// consoleKeys checks trusted console keys: ids, roles, Ed25519 public keys.
func (p *problems) consoleKeys(keys []ConsoleKey) {
	for i, k := range keys {
		key := fmt.Sprintf("console_keys[%d]", i)
		p.id(key+".id", k.ID)
		p.oneOf(key+".role", k.Role, "technician", "ops")
		if b, err := base64.StdEncoding.DecodeString(k.PublicKey); err != nil || len(b) != 32 {
			p.add(key+".public_key", "is not a base64 Ed25519 public key (44 characters)")
		}
		for _, o := range keys[:i] {
			if o.ID == k.ID {
				p.add(key+".id", "%q is listed twice", k.ID)
			}
		}
	}
}

func (l Log) validate(p *problems) {
	p.oneOf("log.level", l.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", l.Format, "text", "json")
}

// Validate checks every field; the error lists each bad key.
func (c *Totemd) Validate() error {
	var p problems
	c.validateTotem(&p)
	c.validateBroker(&p)
	p.atLeast("sync.result_wait", c.Sync.ResultWait, time.Millisecond)
	p.atLeast("sync.telemetry_interval", c.Sync.TelemetryInterval, time.Second)
	p.atLeast("sync.queued_ttl", c.Sync.QueuedTTL, time.Minute)
	c.validateOutbox(&p)
	c.validateDevices(&p)
	c.validateSession(&p)
	if c.Update.Arch != "" {
		p.oneOf("update.arch", c.Update.Arch, "amd64", "arm64", "armhf")
	}
	p.atLeast("update.health_window", c.Update.HealthWindow, 30*time.Second)
	p.atLeast("update.quiet", c.Update.Quiet, c.Session.IdleTimeout.Duration)
	c.Log.validate(&p)
	return errors.Join(p...)
}

// validateTotem checks [totem], the console keys and state_dir.
func (c *Totemd) validateTotem(p *problems) {
	p.id("totem.id", c.Totem.ID)
	p.consoleKeys(c.ConsoleKeys)
	p.nonEmpty("totem.asl", c.Totem.ASL)
	p.nonEmpty("totem.location", c.Totem.Location)
	if _, err := time.LoadLocation(c.Totem.TimeZone); err != nil || c.Totem.TimeZone == "" || c.Totem.TimeZone == "Local" {
		p.add("totem.time_zone", "%q is not an IANA time zone (e.g. \"Europe/Rome\")", c.Totem.TimeZone)
	}
	if l := c.Totem.ReceiptLink; l != "" {
		if u, err := url.Parse(strings.ReplaceAll(l, "{protocollo}", "0")); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.Contains(l, "{protocollo}") {
			p.add("totem.receipt_link", "%q is not an http(s) link with {protocollo}", l)
		}
	}
	p.nonEmpty("state_dir", c.StateDir)
}

// validateBroker checks the totem's [broker].
func (c *Totemd) validateBroker(p *problems) {
	p.brokerURL("broker.url", c.Broker.URL)
	p.plainURL("broker.url", c.Broker.URL, c.Broker.TLSClient)
	p.tlsClient(c.Broker.TLSClient)
	// broker.credentials_file and devices.receipt_dir may be empty: see derive.
	// MQTT carries the keep-alive as a 16-bit number of seconds.
	p.atLeast("broker.keep_alive", c.Broker.KeepAlive, time.Second)
	if c.Broker.KeepAlive.Duration > 65535*time.Second {
		p.add("broker.keep_alive", "%v is longer than 65535s", c.Broker.KeepAlive.Duration)
	}
	p.atLeast("broker.reconnect_min", c.Broker.ReconnectMin, time.Millisecond)
	if c.Broker.ReconnectMax.Duration < c.Broker.ReconnectMin.Duration {
		p.add("broker.reconnect_max", "%v is shorter than reconnect_min %v",
			c.Broker.ReconnectMax.Duration, c.Broker.ReconnectMin.Duration)
	}
}

// validateOutbox checks [outbox].
func (c *Totemd) validateOutbox(p *problems) {
	// The outbox keeps a reserve for results below max_size: a few MiB
	// at least, and no more than a card can hold.
	if m := c.Outbox.MaxSizeMB; m != 0 && (m < minOutboxMB || m > 1<<20) {
		p.add("outbox.max_size_mb", "%d is not 0 (no bound) or %d to %d", m, minOutboxMB, 1<<20)
	}
	if c.Outbox.MaxPending < 0 {
		p.add("outbox.max_pending", "%d is negative", c.Outbox.MaxPending)
	}
	if a := c.Outbox.AlarmAt; !(a > 0 && a < 1) {
		p.add("outbox.alarm_at", "%v is not a fraction between 0 and 1", a)
	}
	p.kinds("outbox.telemetry_kinds", c.Outbox.TelemetryKinds)
	p.kinds("outbox.audit_kinds", c.Outbox.AuditKinds)
	p.atLeast("outbox.retention", c.Outbox.Retention, 24*time.Hour)
	for _, k := range c.Outbox.AuditKinds {
		if slices.Contains(c.Outbox.TelemetryKinds, k) {
			p.add("outbox.audit_kinds", "%q is a telemetry kind too", k)
		}
	}
}

// validateDevices checks [devices].
func (c *Totemd) validateDevices(p *problems) {
	p.oneOf("devices.reader", c.Devices.Reader, "sim", "pcsc")
	p.oneOf("devices.printer", c.Devices.Printer, "sim", "escpos")
	p.oneOf("devices.panel", c.Devices.Panel, "auto", "terminal", "none", "hardware")
	if c.Devices.Printer == "escpos" {
		p.nonEmpty("devices.escpos.port", c.Devices.ESCPOS.Port)
	}
	if b := c.Devices.ESCPOS.Baud; b != 0 && (b < 1200 || b > 921600) {
		p.add("devices.escpos.baud", "%d is not a serial speed", b)
	}
	p.nonEmpty("devices.escpos.profile", c.Devices.ESCPOS.Profile)
	if c.Devices.Panel == "hardware" {
		if n := len(c.Devices.Keypad.Rows); n != 4 {
			p.add("devices.keypad.rows", "%d pins, want 4", n)
		}
		if n := len(c.Devices.Keypad.Cols); n != 3 && n != 4 {
			p.add("devices.keypad.cols", "%d pins, want 3 or 4", n)
		}
	}
	p.oneOf("devices.display.kind", c.Devices.Display.Kind, "lcd", "oled")
	p.oneOf("devices.speaker.kind", c.Devices.Speaker.Kind, "espeak", "none")
	if r := c.Devices.Speaker.Rate; r < 80 || r > 300 {
		p.add("devices.speaker.rate", "%d words per minute, want 80 to 300", r)
	}
	p.oneOf("devices.keyboard_layout", c.Devices.KeyboardLayout, "it", "us")
	if k := c.Devices.Keyboard; k != "" && !filepath.IsAbs(k) {
		p.add("devices.keyboard", "%q is not an absolute path (e.g. /dev/input/by-id/…-event-kbd)", k)
	}
	p.oneOf("devices.display.rom", c.Devices.Display.ROM, "a00", "a02")
	if a := c.Devices.Display.Addr; a < 0 || a > 0x7f {
		p.add("devices.display.addr", "%#x is not a 7-bit I2C address", a)
	}
}

// validateSession checks [session].
func (c *Totemd) validateSession(p *problems) {
	p.atLeast("session.idle_timeout", c.Session.IdleTimeout, 5*time.Second)
	p.atLeast("session.maintenance_idle", c.Session.MaintenanceIdle, 30*time.Second)
	if c.Session.MaintenanceIdle.Duration > time.Hour {
		p.add("session.maintenance_idle", "%v is longer than 1h: an open maintenance session left behind stays open", c.Session.MaintenanceIdle.Duration)
	}
	if w := c.Session.IdleWarning.Duration; w != 0 && w < time.Second {
		p.add("session.idle_warning", "%v is neither 0 (a quarter of idle_timeout) nor at least 1s", w)
	}
	if c.Session.IdleWarning.Duration >= c.Session.IdleTimeout.Duration {
		p.add("session.idle_warning", "%v is not shorter than session.idle_timeout", c.Session.IdleWarning.Duration)
	}
	p.atLeast("session.operator_idle_timeout", c.Session.OperatorIdleTimeout, 10*time.Second)
	if c.Session.OperatorIdleTimeout.Duration > 30*time.Minute {
		p.add("session.operator_idle_timeout", "%s: at most 30m (an open operator session is an open door)", c.Session.OperatorIdleTimeout.Duration)
	}
	p.oneOf("session.lang", c.Session.Lang, "it", "en")
}

// minOutboxMB is the smallest bound of the outbox's file.
const minOutboxMB = 4

var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// kinds checks a list of operation kinds: names as the protocol writes
// them, each once.
func (p *problems) kinds(key string, v []string) {
	for i, k := range v {
		if !kindRE.MatchString(k) {
			p.add(key, "%q is not a kind (lower case letters, digits, _)", k)
		}
		if slices.Contains(v[:i], k) {
			p.add(key, "%q twice", k)
		}
	}
}

// maxPacket is the largest packet MQTT can describe (256 MiB - 1).
const maxPacket = 268435455

// Validate checks every field; the error lists each bad key.
func (c *Totemhub) Validate() error {
	var p problems
	p.nonEmpty("state_dir", c.StateDir)
	if n := c.MemoryLimitMiB; n != 0 && (n < 64 || n > 1<<20) {
		p.add("memory_limit_mib", "%d is not 0 or %d-%d", n, 64, 1<<20)
	}
	p.consoleKeys(c.ConsoleKeys)
	if c.Audit.RetentionMonths < MinAuditRetentionMonths {
		p.add("audit.retention_months", "%d: at least %d (the Garante: administrators' logs kept six months or more)",
			c.Audit.RetentionMonths, MinAuditRetentionMonths)
	}
	p.store(c)
	c.validateHTTP(&p)
	c.validateBroker(&p)
	c.validateFleet(&p)
	c.validateCMS(&p)
	c.Log.validate(&p)
	return errors.Join(p...)
}

// validateHTTP checks [http].
func (c *Totemhub) validateHTTP(p *problems) {
	if c.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || !validPort(port, 0) {
			p.add("http.listen", "%q is not host:port", c.HTTP.Listen)
		}
	}
	switch c.HTTP.TLS {
	case "", "hub":
		if c.HTTP.CertFile != "" || c.HTTP.KeyFile != "" {
			p.add("http.cert_file", "cert_file and key_file are for tls = \"files\"")
		}
	case "files":
		if c.HTTP.CertFile == "" || c.HTTP.KeyFile == "" {
			p.add("http.cert_file", "tls = \"files\" needs cert_file and key_file")
		}
	default:
		p.add("http.tls", "%q: want \"\", \"hub\" or \"files\"", c.HTTP.TLS)
	}
}

// validateBroker checks the hub's [broker]: the embedded broker's
// listeners and certificate, or the external one's URL and credentials.
func (c *Totemhub) validateBroker(p *problems) {
	if c.Broker.Embedded {
		host, port, err := net.SplitHostPort(c.Broker.Listen)
		switch {
		case err != nil || !validPort(port, 0):
			p.add("broker.listen", "%q is not host:port", c.Broker.Listen)
		case !Loopback(host) && !c.Broker.AllowPlain:
			p.add("broker.listen", "plain listener %q is not on the loopback: passwords and citizens' data would cross the network in clear; use tls_listen (or set allow_plain = true)", c.Broker.Listen)
		}
		if c.Broker.TLSListen != "" {
			if _, port, err := net.SplitHostPort(c.Broker.TLSListen); err != nil || !validPort(port, 0) {
				p.add("broker.tls_listen", "%q is not host:port", c.Broker.TLSListen)
			}
			if c.Broker.TLSCertFile == "" && len(c.Broker.TLSNames) == 0 {
				p.add("broker.tls_names", "must name the broker (host names or addresses the clients use) when tls_cert_file is not set")
			}
		}
		for _, n := range c.Broker.TLSNames {
			if !tlsNameRE.MatchString(n) && net.ParseIP(n) == nil {
				p.add("broker.tls_names", "%q is neither a host name nor an IP address", n)
			}
		}
		if (c.Broker.TLSCertFile == "") != (c.Broker.TLSKeyFile == "") {
			p.add("broker.tls_cert_file", "tls_cert_file and tls_key_file go together")
		}
	} else {
		if c.Broker.URL == "" {
			p.add("broker.url", "required when broker.embedded is false")
		}
		if c.Broker.CredentialsFile == "" {
			p.add("broker.credentials_file", "required when broker.embedded is false")
		}
	}
	if c.Broker.DynSec {
		if c.Broker.DynSecUser == "" {
			p.add("broker.dynsec_user", "required with dynsec: the plugin's admin client (mosquitto_ctrl dynsec init)")
		}
		if c.Broker.DynSecPasswordFile == "" {
			p.add("broker.dynsec_password_file", "required with dynsec: a file (0600) holding the admin client's password")
		}
	}
	if c.Broker.URL != "" {
		p.brokerURL("broker.url", c.Broker.URL)
		p.plainURL("broker.url", c.Broker.URL, c.Broker.TLSClient)
	}
	p.tlsClient(c.Broker.TLSClient)
	if c.Broker.MaxPacket < 1024 || c.Broker.MaxPacket > maxPacket {
		p.add("broker.max_packet", "%d is not %d-%d", c.Broker.MaxPacket, 1024, maxPacket)
	}
	if c.Broker.MaxConnections < 1 || c.Broker.MaxConnections > 1<<20 {
		p.add("broker.max_connections", "%d is not %d-%d", c.Broker.MaxConnections, 1, 1<<20)
	}
	if d := c.Broker.ConnectTimeout.Duration; d < 100*time.Millisecond || d > 10*time.Minute {
		p.add("broker.connect_timeout", "%v is not 100ms-10m", d)
	}
	if n := c.Broker.MaxConnectPacket; n < 1024 || n > 1<<20 || n > c.Broker.MaxPacket {
		p.add("broker.max_connect_packet", "%d is not %d-%d, nor above max_packet", n, 1024, 1<<20)
	}
}

// validateFleet checks [fleet].
func (c *Totemhub) validateFleet(p *problems) {
	p.nonEmpty("fleet.credentials_dir", c.Fleet.CredentialsDir)
	p.atLeast("fleet.telemetry_interval", c.Fleet.TelemetryInterval, time.Second)
	for i, id := range c.Fleet.Provision {
		p.id("fleet.provision", id)
		if slices.Contains(c.Fleet.Provision[:i], id) {
			p.add("fleet.provision", "%q is listed twice", id)
		}
	}
	for i, id := range c.Fleet.ReissueCounters {
		p.id("fleet.reissue_counters", id)
		if slices.Contains(c.Fleet.ReissueCounters[:i], id) {
			p.add("fleet.reissue_counters", "%q is listed twice", id)
		}
	}
	if c.Fleet.Console != "" {
		p.id("fleet.console", c.Fleet.Console)
		if slices.Contains(c.Fleet.Provision, c.Fleet.Console) {
			p.add("fleet.console", "%q is also a totem in fleet.provision", c.Fleet.Console)
		}
	}

	if d := c.Fleet.EnrollValidity.Duration; d < time.Minute || d > 30*24*time.Hour {
		p.add("fleet.enroll_validity", "%v is not 1m-720h", d)
	}
	p.atLeast("fleet.first_validity", c.Fleet.FirstValidity, 24*time.Hour)
	p.atLeast("fleet.validity", c.Fleet.Validity, 24*time.Hour)
	if d := c.Fleet.RotateBefore.Duration; d < time.Hour || d >= c.Fleet.Validity.Duration || d >= c.Fleet.FirstValidity.Duration {
		p.add("fleet.rotate_before", "%v is not at least 1h and below validity and first_validity", d)
	}
}

// validateCMS checks [cms].
func (c *Totemhub) validateCMS(p *problems) {
	p.oneOf("cms.policy", c.CMS.Policy, "fse-2020", "fse-2016")
	p.atLeast("cms.sendlog_retention", c.CMS.SendLogRetention, 4380*time.Hour)
	p.atLeast("cms.refusal_retention", c.CMS.RefusalRetention, 24*time.Hour)
	p.atLeast("cms.citizen_retention", c.CMS.CitizenRetention, 24*time.Hour)
	if n := c.CMS.FSERetries; n < 1 || n > 1000 {
		p.add("cms.fse_retries", "%d is not 1-1000", n)
	}
	if d := c.CMS.FSERetryInterval.Duration; d < time.Second || d > 24*time.Hour {
		p.add("cms.fse_retry_interval", "%v is not 1s-24h", d)
	}
}

// Validate checks every field; the error lists each bad key.
func (c *Totemctl) Validate() error {
	var p problems
	p.brokerURL("broker.url", c.Broker.URL)
	p.plainURL("broker.url", c.Broker.URL, c.Broker.TLSClient)
	p.tlsClient(c.Broker.TLSClient)
	p.nonEmpty("broker.credentials_file", c.Broker.CredentialsFile)
	p.atLeast("timeout", c.Timeout, time.Millisecond)
	return errors.Join(p...)
}

// store checks [store]: a postgres:// URL or nothing, a pool of 1-1000,
// a statement timeout of 0 (the server's) or 100ms-1h, partition only
// with a URL. The URL is never
// quoted back: it may hold a password.
func (p *problems) store(c *Totemhub) {
	if u := c.Store.URL; u != "" {
		pu, err := url.Parse(u)
		switch {
		case err != nil:
			p.add("store.url", "is not a URL")
		case pu.Scheme != "postgres" && pu.Scheme != "postgresql":
			p.add("store.url", "scheme %q is not postgres:// (empty = bbolt in state_dir)", pu.Scheme)
		}
	}
	if n := c.Store.PoolSize; n < 1 || n > 1000 {
		p.add("store.pool_size", "%d is not 1-1000", n)
	}
	if d := c.Store.StatementTimeout.Duration; d != 0 && (d < 100*time.Millisecond || d > time.Hour) {
		p.add("store.statement_timeout", "%v is not 0 or 100ms-1h", d)
	}
	if c.Store.Partition && c.Store.URL == "" {
		p.add("store.partition", "needs store.url (the hubs' leases are in PostgreSQL)")
	}
}
