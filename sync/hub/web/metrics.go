package web

import (
	"strings"
	"sync/atomic"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Sources are what the metrics read at each scrape. Only Hub is required:
// a hub on an external broker has no Broker, Connections nor Credentials,
// and one without a registry no Fleet.
type Sources struct {
	Hub         *hub.Stats
	Queued      func() int // the hub's queue depth; nil: not shown
	Broker      func() broker.Stats
	Connections func() int
	Fleet       *hub.Fleet
	Credentials func() ([]broker.Credential, error)
	Console     *ConsoleStats          // the ops console's logins; nil: not shown
	Enroll      func() hub.EnrollStats // the hub's enrollment requests; nil: not shown
}

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors and the hub's own, read from s at each scrape (no copy kept:
// a totem leaves the series when it leaves the registry).
func NewRegistry(s Sources) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{s: s})
	return r
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics, named by Prometheus' conventions: totemhub_ for the hub's
// own, totem_ for a totem's (one series per totem of the registry),
// counters in _total, times as Unix timestamps in seconds (an age would
// be stale as soon as scraped).
var (
	dApplied    = desc("totemhub_ops_applied_total", "Operations applied by the backend, by kind (the declared kinds, other for the rest) and outcome (accepted, rejected).", "kind", "outcome")
	dBatchTime  = desc("totemhub_batch_duration_seconds", "Time the backend took to apply one batch (one commit).")
	dDuplicates = desc("totemhub_ops_duplicates_total", "Operations received again; their stored result was sent again.")
	dGaps       = desc("totemhub_ops_gap_refusals_total", "Operations refused for a gap in the totem's sequence.")
	dStoreRef   = desc("totemhub_ops_store_refusals_total", "Operations refused because the store failed (a database down): the totems send them again.")
	dMalformed  = desc("totemhub_payloads_malformed_total", "Payloads refused as malformed.")
	dDropped    = desc("totemhub_ops_dropped_total", "Operations acknowledged to the broker and then dropped (stays 0).")
	dFull       = desc("totemhub_queue_full_total", "Times the ingest queue was full and the hub stopped taking (flow control).")
	dBatches    = desc("totemhub_batches_total", "Batches handed to the backend.")
	dForeign    = desc("totemhub_ops_foreign_total", "Operations of totems another hub owns, dropped ([store] partition: their owner has its copy).")
	dQueued     = desc("totemhub_queue_operations", "Operations waiting in the hub's ingest queue.")
	dCommands   = desc("totemhub_commands_total", "Console commands to the hub that were run, by result (ok, failed).", "result")
	dCmdRefused = desc("totemhub_commands_refused_total", "Console commands to the hub refused, by code (sync/cmdsig's, and invalid).", "code")
	dReqDropped = desc("totemhub_requests_dropped_total", "Console commands or sync requests dropped while their pool was full or over a totem's rate.", "kind")

	dLogins      = desc("totemhub_console_logins_total", "Logins to the ops console, by result (ok, failed, refused while locked or blocked).", "result")
	dConsLocks   = desc("totemhub_console_lockouts_total", "Ops console accounts locked after repeated failed logins.")
	dConsActions = desc("totemhub_console_actions_total", "Audited actions taken in the ops console (technician actions, unlocks, downloads…).")
	dConns       = desc("totemhub_broker_connections", "Connections open at the embedded broker.")
	dAuthFail    = desc("totemhub_broker_auth_failures_total", "CONNECTs the embedded broker refused, by reason.", "reason")
	dLockouts    = desc("totemhub_broker_lockouts_total", "Users locked after repeated failed authentications.")
	dConnRefused = desc("totemhub_broker_connections_refused_total", "Connections closed before authentication, by reason.", "reason")
	dTakeovers   = desc("totemhub_broker_takeovers_total", "Connections replaced by a new one of the same user and client id.")
	dTakeWaits   = desc("totemhub_broker_takeover_waits_total", "Connections that waited for the previous one of their client id to end before taking its session over, by result (ended; timeout: let in before it ended).", "result")
	dDenied      = desc("totemhub_broker_denied_total", "Publishes, subscriptions and retained messages refused by the ACL, by operation.", "op")
	dEnrollConns = desc("totemhub_broker_enroll_connections_total", "Connections of the enroll user admitted.")
	dEnrollReqs  = desc("totemhub_enroll_requests_total", "Enrollment requests the hub received, by result: ok, ca (a new totem's CA request answered), dropped (over the hub's rate), or the reason of the refusal ("+strings.Join(enroll.Reasons, ", ")+").", "result")
	dLocked      = desc("totemhub_broker_locked_users", "Registry users locked now (totemctl unlock lifts a lock).")
	dCredErrors  = desc("totemhub_credentials_read_errors_total", "Scrapes that could not read the credentials registry.")

	dOnline     = desc("totem_online", "1 if the totem is online, 0 if offline or never seen.", "totem")
	dSince      = desc("totem_status_since_timestamp_seconds", "When the totem's presence last changed.", "totem")
	dLastSeen   = desc("totem_last_seen_timestamp_seconds", "When the hub last heard from the totem.", "totem")
	dPending    = desc("totem_outbox_pending", "Operations queued at the totem, from its telemetry.", "totem")
	dOldest     = desc("totem_outbox_oldest_pending_timestamp_seconds", "The totem's oldest pending operation, by the totem's clock.", "totem")
	dUsage      = desc("totem_outbox_usage_ratio", "How full the totem's outbox is against its quotas (1: operations refused).", "totem")
	dAlarm      = desc("totem_outbox_alarm", "1 if the totem's outbox reached its alarm threshold.", "totem")
	dQuarantine = desc("totem_outbox_quarantined", "Outbox entries a technician must look at.", "totem")
	dDeviceUp   = desc("totem_device_up", "1 if the device reports ok.", "totem", "device")
	dDevice     = desc("totem_device_state", "The device's state as the totem reports it (always 1).", "totem", "device", "state")
	dClock      = desc("totem_clock_synced", "1 if the totem's clock was synchronised at its latest operation.", "totem")
	dInfo       = desc("totem_info", "The totem's software version and location (always 1).", "totem", "version", "location")
	dExpiry     = desc("totem_credentials_expiry_timestamp_seconds", "When the totem's broker secret expires.", "totem")
	dCredLocked = desc("totem_credentials_locked", "1 if the totem's broker user is locked.", "totem")
	dCredEvents = desc("totem_credential_events_total", "The totem's credential events since the hub started, by event (enrolled, rotated, expired, failed, locked, unlocked).", "totem", "event")
)

var allDescs = []*prometheus.Desc{dQueued, dCommands, dCmdRefused, dApplied, dBatchTime, dDuplicates, dGaps, dStoreRef, dMalformed, dDropped, dFull, dBatches, dForeign, dReqDropped,
	dLogins, dConsLocks, dConsActions, dConns, dAuthFail, dLockouts, dConnRefused, dTakeovers, dTakeWaits, dDenied, dEnrollConns, dEnrollReqs, dLocked, dCredErrors,
	dOnline, dSince, dLastSeen, dPending, dOldest, dUsage, dAlarm, dQuarantine, dDeviceUp, dDevice, dClock, dInfo,
	dExpiry, dCredLocked, dCredEvents}

type collector struct {
	s          Sources
	credErrors atomic.Int64 // scrapes run at once: atomic
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// label makes a value a totem sent safe as a label: valid UTF-8 (an
// invalid one would fail the whole scrape), no control characters.
func label(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Hub
	for k, n := range st.AppliedByKind() {
		counter(ch, dApplied, n, k[0], k[1])
	}
	count, sum, buckets := st.BatchLatency()
	ch <- prometheus.MustNewConstHistogram(dBatchTime, count, sum, buckets)
	counter(ch, dDuplicates, st.Duplicates.Load())
	counter(ch, dGaps, st.Gaps.Load())
	counter(ch, dStoreRef, st.Unavailable.Load())
	counter(ch, dMalformed, st.Malformed.Load())
	counter(ch, dDropped, st.Dropped.Load())
	counter(ch, dFull, st.Full.Load())
	counter(ch, dBatches, st.Batches.Load())
	counter(ch, dForeign, st.Foreign.Load())
	counter(ch, dReqDropped, st.CommandsDropped.Load(), "command")
	counter(ch, dReqDropped, st.SyncDropped.Load(), "sync")
	counter(ch, dCommands, st.CommandsOK.Load(), "ok")
	counter(ch, dCommands, st.CommandsFailed.Load(), "failed")
	for code, n := range st.RefusedByCode() {
		counter(ch, dCmdRefused, n, code)
	}
	if c.s.Queued != nil {
		gauge(ch, dQueued, float64(c.s.Queued()))
	}
	if c.s.Broker != nil {
		b := c.s.Broker()
		for _, r := range []struct {
			reason string
			n      int64
		}{{"bad_credentials", b.BadCredentials}, {"locked", b.LockedRefused}, {"expired", b.ExpiredRefused},
			{"not_authorized", b.NotAuthorized}, {"client_id", b.ClientIDRefused}, {"enroll_rate", b.EnrollRate},
			{"retained_will", b.RetainRefusedCon}} {
			counter(ch, dAuthFail, r.n, r.reason)
		}
		for _, r := range []struct {
			reason string
			n      int64
		}{{"accept_error", b.AcceptErrors}, {"over_capacity", b.OverCapacity}, {"connect_timeout", b.ConnectTimeouts},
			{"oversize_connect", b.OversizeConnect}, {"not_connect", b.NotConnect}, {"tls_handshake", b.TLSFailures}} {
			counter(ch, dConnRefused, r.n, r.reason)
		}
		counter(ch, dLockouts, b.Lockouts)
		counter(ch, dTakeovers, b.Takeovers)
		counter(ch, dTakeWaits, b.TakeoverWaits-b.TakeoverTimeouts, "ended")
		counter(ch, dTakeWaits, b.TakeoverTimeouts, "timeout")
		counter(ch, dEnrollConns, b.EnrollConns)
		counter(ch, dDenied, b.PublishDenied, "publish")
		counter(ch, dDenied, b.SubscribeDenied, "subscribe")
		counter(ch, dDenied, b.RetainRefused, "retain")
	}
	if cs := c.s.Console; cs != nil {
		counter(ch, dLogins, cs.LoginsOK.Load(), "ok")
		counter(ch, dLogins, cs.LoginsFailed.Load(), "failed")
		counter(ch, dLogins, cs.LoginsRefused.Load(), "refused")
		counter(ch, dConsLocks, cs.Lockouts.Load())
		counter(ch, dConsActions, cs.Actions.Load())
	}
	if c.s.Enroll != nil {
		e := c.s.Enroll()
		counter(ch, dEnrollReqs, e.OK, "ok")
		counter(ch, dEnrollReqs, e.CA, "ca")
		counter(ch, dEnrollReqs, e.Dropped, "dropped")
		// Every reason, zero included: the label takes no other value.
		for _, r := range enroll.Reasons {
			counter(ch, dEnrollReqs, e.Refused[r], r)
		}
	}
	if c.s.Connections != nil {
		gauge(ch, dConns, float64(c.s.Connections()))
	}
	if c.s.Credentials != nil {
		c.collectCredentials(ch)
	}
	if c.s.Fleet != nil {
		collectFleet(ch, c.s.Fleet)
	}
}

func (c *collector) collectCredentials(ch chan<- prometheus.Metric) {
	cs, err := c.s.Credentials()
	if err != nil {
		// The scrape goes on without these series; the counter says why
		// they are missing.
		c.credErrors.Add(1)
	}
	counter(ch, dCredErrors, c.credErrors.Load())
	if err != nil {
		return
	}
	locked := 0
	for _, u := range cs {
		if u.Locked {
			locked++
		}
		if u.Role != creds.RoleTotem {
			continue
		}
		t := label(u.Username)
		if !u.Expires.IsZero() {
			gauge(ch, dExpiry, float64(u.Expires.Unix()), t)
		}
		gauge(ch, dCredLocked, b2f(u.Locked), t)
		// The broker's fixed set of events, not whatever the map holds:
		// the label stays bounded.
		for _, e := range broker.CredentialEvents {
			counter(ch, dCredEvents, u.Events[e], t, e)
		}
	}
	gauge(ch, dLocked, float64(locked))
}

func collectFleet(ch chan<- prometheus.Metric, f *hub.Fleet) {
	for _, ts := range f.List(hub.FleetFilter{}) {
		t := label(ts.Totem)
		gauge(ch, dOnline, b2f(ts.Status == protocol.Online), t)
		if !ts.Since.IsZero() {
			gauge(ch, dSince, float64(ts.Since.Unix()), t)
		}
		if !ts.LastSeen.IsZero() {
			gauge(ch, dLastSeen, float64(ts.LastSeen.Unix()), t)
		}
		if ts.Status == hub.NeverSeen {
			continue // nothing it said to show
		}
		gauge(ch, dPending, float64(ts.Queue), t)
		if !ts.Oldest.IsZero() {
			gauge(ch, dOldest, float64(ts.Oldest.Unix()), t)
		}
		gauge(ch, dUsage, ts.Storage, t)
		gauge(ch, dAlarm, b2f(ts.StorageHigh), t)
		gauge(ch, dQuarantine, float64(ts.Quarantined), t)
		// Two names that differ only in invalid bytes become the same
		// label: one series each, or the scrape would fail.
		seen := make(map[string]bool, len(ts.Devices))
		for d, s := range ts.Devices {
			d, s = label(d), label(s)
			if seen[d] {
				continue
			}
			seen[d] = true
			gauge(ch, dDeviceUp, b2f(s == "ok"), t, d)
			gauge(ch, dDevice, 1, t, d, s)
		}
		if ts.ClockSynced != nil {
			gauge(ch, dClock, b2f(*ts.ClockSynced), t)
		}
		gauge(ch, dInfo, 1, t, label(ts.Version), label(ts.Location))
	}
}
