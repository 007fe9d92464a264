// Package uplink is totemd's MQTT 5 link to the hub: it drains the outbox
// in sequence order, records both outcomes of every result, publishes
// presence (retained, offline by Last Will) and telemetry, and serves
// console commands with MQTT 5 response topics and correlation data.
//
// The connection is github.com/eclipse/paho.golang's autopaho; the durable
// queue is our outbox, never paho's. An operation leaves the outbox only
// when a result from the hub says it was processed.
package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/internal/mqttconn"
	"github.com/aslcns/totem/internal/waiters"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Options configures an Uplink.
type Options struct {
	Totem    string
	URL      string
	Username string
	Password string
	Outbox   *outbox.Outbox
	Logger   *slog.Logger
	// TLS is the client configuration for an mqtts:// URL (pki.Client
	// builds it); CAFile, the file it trusts, only names it in the log.
	TLS    *tls.Config
	CAFile string

	KeepAlive  time.Duration // default 30s
	BackoffMin time.Duration // default 500ms
	BackoffMax time.Duration // default 30s
	// A broker's refusal (a CONNACK reason code) is asked again later
	// than a network failure, never given up (see refusal.go): every
	// RefusedMin, doubling up to RefusedMax, or every CredentialsRetry
	// when the credentials themselves were refused; after a lock of the
	// credentials (0x8A), one probe every LockedRetry only.
	RefusedMin       time.Duration // default 30s
	RefusedMax       time.Duration // default 15m
	CredentialsRetry time.Duration // default 1h
	LockedRetry      time.Duration // default 24h
	// Window is how many operations may wait for their result at once
	// (the in-flight window); it is kept below the broker's receive
	// maximum so that the priority lane always has packet ids left.
	Window int // default 1024
	// Rate and Burst are the token bucket of the backlog lane: at most
	// Burst operations in a row, then Rate per second. Defaults
	// DefaultRate and DefaultBurst; a negative Rate means no limit.
	Rate  float64
	Burst int
	// Clock drives the token bucket and measures how long a sent
	// operation has waited for its result (ResendAfter); default the
	// system clock.
	Clock Clock
	// ResendAfter is how long an operation waits for its result before
	// it is sent again (on Clock; looked at every ResendAfter/3).
	ResendAfter time.Duration // default 15s

	Version  string // firmware version, in the presence message
	Location string // where the totem stands, in the presence message
	ASL      string // the ASL it serves, in the presence message
	Boot     string // boot id
	// Mono is the time since boot on the monotonic clock (sync/stamp's
	// stamp); it numbers the connections (State.Session), so that within
	// one boot a later connection, even of a restarted process, has the
	// higher number. Default: the wall clock.
	Mono func() time.Duration

	// Telemetry returns the health report to publish; nil publishes one
	// with the queue only.
	Telemetry         func() protocol.Telemetry
	TelemetryInterval time.Duration // default 30s

	// OnResult is called after a result was recorded in the outbox.
	OnResult func(outbox.Entry)
	// OnPolicy is called with each consent policy the hub publishes.
	OnPolicy func(*protocol.Policy)
	// OnTechnicians, when set, subscribes the totem's technician set
	// (retained, signed by the hub: sync/techset) and gets each copy; the
	// receiver verifies it.
	OnTechnicians func([]byte)
	// OnCommand answers a console command. It runs on its own goroutine,
	// only for commands Verifier admitted.
	OnCommand func(context.Context, *protocol.Command) *protocol.Reply
	// OnRefused hears each command Verifier refused, with the refusal
	// sent back (the totem's audit); it runs on its own goroutine.
	OnRefused func(*protocol.Command, *protocol.Reply)
	// Verifier checks every command's signature, target, role, expiry
	// and nonce before OnCommand; nil refuses every command.
	Verifier *cmdsig.Verifier
	// Heartbeat is how often the session loop wakes, connected or not,
	// to record that it runs (Progress); default 1s.
	Heartbeat time.Duration

	// Store, when set, is the file Username and Password come from: the
	// uplink replaces the secret itself from RotateAt on (rotate.go),
	// checking every RotateCheck (default 1h) and after each connection.
	Store        *creds.Store
	RotateAt     time.Time
	RotateCheck  time.Duration
	rotateStep   func(step string) error // tests: a rotation dies at a step
	beforeSetup  func()                  // tests: a connection's subscriptions are late
	beforeRecord func(n int)             // tests: the recorder is slow (n results in the round)
	resendCheck  func()                  // tests: the session loop judged what is overdue
	// OnUpdate, when set, subscribes the totem's update topic and gets
	// each message on it (sync/update/agent's Link.Receive); it must not
	// wait. On every connection the link says hello on update_req, so
	// the hub offers again a job the totem missed offline.
	OnUpdate func([]byte)
}

// Uplink is the link. Create it with New and run it with Run.
type Uplink struct {
	o   Options
	log *slog.Logger
	// telemetryEvery is the telemetry interval in force (ns): a remote
	// configuration change sets it live (SetTelemetryInterval).
	telemetryEvery atomic.Int64
	// beat is when the session loop last ran (unix ns), see Progress.
	beat atomic.Int64

	connected atomic.Bool
	conns     atomic.Uint64 // connections made: a change means subscriptions to redo
	// subscribed is the connection (a conns count) whose subscriptions
	// are in place: until then an answer from the hub would be lost.
	subscribed atomic.Uint64
	// telemetrySent is when a health report last left (unix ns), for
	// an update's health check (TelemetrySent).
	telemetrySent atomic.Int64
	retryIn       atomic.Int64          // after a refusal, the delay before the next attempt; 0 otherwise
	sessions      sessions              // the connections' numbers (State.Session)
	wake          signal                // wakes the session loop
	results       chan *protocol.Result // results waiting to be recorded

	ops     *opQueue  // the backlog lane's transmit queue
	backlog *backlog  // what the backlog lane sent and waits for (backlog.go)
	rot     *rotation // the credentials of each CONNECT and their rotation (rotate.go)
	ledgers waiters.Set[*protocol.Ledger]

	mu       sync.Mutex
	cm       *autopaho.ConnectionManager
	refusal  *protocol.Refusal // the last run of refusals by the broker
	streak   int               // refusals since the last connection
	refusing bool              // the last connection attempt was refused
	linkErr  string            // LastError's code

	// cmds are the goroutines of console commands and events, started
	// from paho's callbacks and from Event at any time: Run closes the set
	// before it disconnects, so none starts while or after it waits.
	cmds goset.Set
}

// New returns an Uplink; it does nothing until Run.
func New(o Options) *Uplink {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = 500 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.RefusedMin <= 0 {
		o.RefusedMin = 30 * time.Second
	}
	if o.RefusedMax < o.RefusedMin {
		o.RefusedMax = max(15*time.Minute, o.RefusedMin)
	}
	if o.CredentialsRetry <= 0 {
		o.CredentialsRetry = time.Hour
	}
	if o.LockedRetry <= 0 {
		o.LockedRetry = 24 * time.Hour
	}
	if o.RotateCheck <= 0 {
		o.RotateCheck = time.Hour
	}
	if o.Window == 0 {
		o.Window = 1024
	}
	if o.ResendAfter == 0 {
		o.ResendAfter = 15 * time.Second
	}
	if o.TelemetryInterval == 0 {
		o.TelemetryInterval = 30 * time.Second
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	u := &Uplink{o: o, log: o.Logger, wake: make(signal, 1), results: make(chan *protocol.Result, 4096), ops: &opQueue{}}
	u.sessions.mono = o.Mono
	u.backlog = newBacklog(&u.o, u.log)
	// A rotation waits for the subscriptions: the hub's reply on the
	// rotated topic must find one.
	u.rot = newRotation(&u.o, u.log, func() bool { return u.connected.Load() && u.subscribed.Load() == u.conns.Load() })
	u.telemetryEvery.Store(int64(o.TelemetryInterval))
	return u
}

// Connected reports whether the link is up.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// SetTelemetryInterval changes the telemetry interval of the running
// link (sync.telemetry_interval changed live); d <= 0 is ignored.
func (u *Uplink) SetTelemetryInterval(d time.Duration) {
	if d > 0 {
		u.telemetryEvery.Store(int64(d))
		u.wake.notify()
	}
}

// TelemetryInterval returns the telemetry interval in force.
func (u *Uplink) TelemetryInterval() time.Duration { return time.Duration(u.telemetryEvery.Load()) }

// Run connects and keeps the link until ctx is done. A broker's refusal
// does not end it: the link is asked again later (see refusal.go) and
// Refused says why it is down meanwhile.
func (u *Uplink) Run(ctx context.Context) error {
	defer u.beat.Store(ended) // see Progress
	srv, err := url.Parse(u.o.URL)
	if err != nil {
		return fmt.Errorf("uplink: broker url: %w", err)
	}
	// The connection outlives ctx by the goodbye: presence offline is
	// published after ctx is done, then the connection is closed.
	connCtx, connCancel := context.WithCancel(context.Background())
	defer connCancel()
	cm, err := autopaho.NewConnection(connCtx, u.config(ctx, srv))
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	u.mu.Lock()
	u.cm = cm
	u.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { u.rot.run(ctx, cm) })
	wg.Go(func() { u.session(ctx, cm) })
	wg.Go(func() { u.recorder(ctx) })
	<-ctx.Done()
	wg.Wait()
	u.cmds.Close()
	if u.connected.Load() {
		// A clean goodbye: retained presence offline, then disconnect.
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		u.publishState(dctx, cm, protocol.Offline)
		cm.Disconnect(dctx)
		dcancel()
	}
	connCancel()
	<-cm.Done()
	u.connected.Store(false)
	return nil
}

// config is the autopaho configuration of the link to srv; ctx is Run's.
func (u *Uplink) config(ctx context.Context, srv *url.URL) autopaho.ClientConfig {
	will, _ := protocol.Marshal(protocol.State{V: protocol.Version, Totem: u.o.Totem, Status: protocol.Offline})
	// Each connection's birth and Last Will carry its session number, so
	// the hub can tell the will of a connection the broker noticed dead
	// late from the totem's newer online.
	//
	// No receive maximum in the CONNECT, although paho then makes a
	// channel of 65 535 messages (512 KB) per connection: with one, the
	// embedded broker (mochi v2.7.9) takes a send quota for the totem and
	// calls Inflight.NextImmediate after each of its packets, which takes
	// the inflight's read lock twice; a result published meanwhile waits
	// for the write lock between the two, and the totem's session
	// deadlocks (seen in make bench-fleet).
	connect := func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
		n := u.sessions.next()
		b, _ := protocol.Marshal(protocol.State{V: protocol.Version, Totem: u.o.Totem, Status: protocol.Offline,
			Boot: u.o.Boot, Session: n})
		if c.WillMessage != nil {
			w := *c.WillMessage
			w.Payload = b
			c.WillMessage = &w
		}
		return c, nil
	}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{srv},
		TlsCfg:                        u.o.TLS,
		KeepAlive:                     uint16(u.o.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              u.reconnectBackoff(backoff(u.o.BackoffMin, u.o.BackoffMax)),
		Queue:                         u.ops,
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               u.o.Username,
		ConnectPassword:               []byte(u.o.Password),
		WillMessage:                   &paho.WillMessage{Topic: protocol.Topic(u.o.Totem, protocol.LeafState), Payload: will, QoS: 1, Retain: true},
		ConnectPacketBuilder:          connect,
		AttemptConnection:             dialBroker,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			u.connectionUp(cm, ca, srv.Host)
		},
		OnConnectionDown: func() bool {
			u.connected.Store(false)
			u.ops.reset()
			u.log.Warn("disconnected")
			u.wake.notify()
			return true
		},
		// autopaho calls OnConnectError before it asks ReconnectBackoff
		// for the next delay, on the same goroutine.
		OnConnectError: func(err error) { u.connectError(ctx, err, srv.Host) },
		ClientConfig: paho.ClientConfig{
			ClientID: u.o.Totem,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) { u.receive(ctx, pr.Packet); return true, nil },
			},
		},
	}
	if u.o.Store != nil {
		// The secret changes with a rotation: each CONNECT takes the
		// current one, and the connection is kept to be dropped.
		// A pending file a rotation left is dropped: the file's secret is
		// accepted (rotate.go).
		if err := u.o.Store.DropPending(); err != nil {
			u.log.Warn("pending credentials not removed", "err", err)
		}
		cfg.ConnectPacketBuilder = func(cp *paho.Connect, srv *url.URL) (*paho.Connect, error) {
			cp, err := u.rot.connectPacket(cp, srv)
			if err != nil {
				return nil, err
			}
			return connect(cp, srv) // the will's session number too
		}
		cfg.AttemptConnection = u.rot.attempt
	}
	return cfg
}

// dialBroker is autopaho's AttemptConnection: its own dialler's connection with
// buffered reads and coalesced writes (internal/mqttconn).
func dialBroker(ctx context.Context, cfg autopaho.ClientConfig, srv *url.URL) (net.Conn, error) {
	return mqttconn.Dial(ctx, srv, cfg.TlsCfg, cfg.ConnectTimeout)
}

// connectionUp starts a connection's book: the window the broker's
// receive maximum leaves, everything pending sent again, the refusals
// forgotten, the session loop and the rotator woken.
//
// cm is recorded here too: the first connection may come up before
// NewConnection has returned to Run, and conn() must not see the link up
// with no connection manager (ErrOffline while Connected).
func (u *Uplink) connectionUp(cm *autopaho.ConnectionManager, ca *paho.Connack, host string) {
	var rm uint16
	if ca != nil && ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		rm = *ca.Properties.ReceiveMaximum
	}
	w := opWindow(u.o.Window, rm)
	u.log.Info("connected", "broker", host, "window", w)
	u.ops.reset()
	u.backlog.reset(w) // everything pending is sent again
	u.mu.Lock()
	u.cm = cm
	u.streak, u.refusing = 0, false
	u.mu.Unlock()
	u.retryIn.Store(0)
	u.conns.Add(1)
	u.connected.Store(true)
	u.wake.notify()
}

// connectError notes a failed connection attempt: a broker's refusal sets
// the delay of the next one (refusal.go); a network or certificate failure
// leaves it to the network backoff.
func (u *Uplink) connectError(ctx context.Context, err error, host string) {
	u.noteLinkError(err, host)
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) && ce.ReasonCode >= 0x80 {
		d := u.refused(ce.ReasonCode, ce.Reason, time.Now())
		if ce.ReasonCode == codeLocked {
			u.log.Error("credentials locked by the hub after too many failed authentications: no more attempts until ops unlocks them or the totem is re-enrolled",
				"reason_code", "0x8A", "unlock", "totemctl unlock "+u.o.Totem, "probe_in", d.Round(time.Second))
			return
		}
		level := slog.LevelWarn
		if definite(ce.ReasonCode) {
			level = slog.LevelError
		}
		r, _ := u.Refused()
		u.log.Log(ctx, level, "connection refused by the broker", "reason_code", fmt.Sprintf("0x%02X", ce.ReasonCode),
			"reason", r.Reason, "retry_in", d.Round(time.Second))
		return
	}
	u.mu.Lock()
	u.refusing = false
	u.mu.Unlock()
	u.retryIn.Store(0)
	if e := pki.Explain(err, host, u.o.CAFile); e != err {
		// Not passing: the totem's ca_file or the hub's names are wrong.
		u.log.Error("broker certificate refused", "err", e)
		return
	}
	u.log.Debug("connect failed", "err", err)
}

// reconnectBackoff is autopaho's ReconnectBackoff: the refusal's delay
// after a refusal, the network backoff otherwise.
func (u *Uplink) reconnectBackoff(network autopaho.Backoff) autopaho.Backoff {
	return func(attempt int) time.Duration {
		if d := u.retryIn.Load(); d > 0 {
			return time.Duration(d)
		}
		return network(attempt)
	}
}

// session runs, for each connection, the subscriptions, presence, the
// telemetry timer and the drain of the outbox.
func (u *Uplink) session(ctx context.Context, cm *autopaho.ConnectionManager) {
	every := u.TelemetryInterval()
	tick := time.NewTicker(every)
	defer tick.Stop()
	heartbeat := time.NewTicker(u.o.Heartbeat)
	defer heartbeat.Stop()
	for {
		if err := u.awaitConnection(ctx, cm, heartbeat.C); err != nil {
			return
		}
		// Without a persistent session a new connection has no
		// subscriptions: whenever the count moves, set up again.
		conn := u.conns.Load()
		if err := u.setup(ctx, cm); err != nil {
			u.log.Warn("session setup failed", "err", err)
			if !sleep(ctx, u.o.BackoffMin) {
				return
			}
			continue
		}
		u.subscribed.Store(conn)
		u.rot.wake.notify() // a rotation due is tried once subscribed
		resend := time.NewTicker(u.o.ResendAfter / 3)
		var after uint64
		reported := depth(u.o.Outbox) // setup published the telemetry
	drain:
		for u.connected.Load() && u.conns.Load() == conn {
			if d := u.TelemetryInterval(); d != every {
				every = d
				tick.Reset(d)
			}
			var (
				err    error
				wait   time.Duration
				tokens <-chan time.Time // the bucket has a token again
			)
			u.alive()
			after, wait, err = u.backlog.drain(ctx, cm, after)
			if wait > 0 {
				tokens = u.o.Clock.After(wait)
			}
			if err != nil {
				u.log.Warn("send failed", "err", err)
				if !sleep(ctx, u.o.BackoffMin) {
					break drain
				}
				after = 0
				continue
			}
			// The retained health report follows the queue: a console
			// must not read a backlog that is gone.
			if d := depth(u.o.Outbox); d != reported {
				u.publishTelemetry(ctx, cm)
				reported = d
			}
			select {
			case <-ctx.Done():
				break drain
			case <-u.wake:
			case <-tokens:
			case <-u.o.Outbox.Notify():
			case <-tick.C:
				u.publishTelemetry(ctx, cm)
			case <-heartbeat.C: // the loop runs: see Progress
			case <-resend.C:
				after = u.backlog.resendRound(after)
			}
		}
		resend.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// depth is the outbox's pending count, -1 when unknown.
func depth(ob *outbox.Outbox) int {
	q, err := ob.Stats()
	if err != nil {
		return -1
	}
	return q.Depth
}

func (u *Uplink) setup(ctx context.Context, cm *autopaho.ConnectionManager) error {
	if u.o.beforeSetup != nil {
		u.o.beforeSetup()
	}
	t := u.o.Totem
	_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic(t, protocol.LeafResult), QoS: 1},
		{Topic: protocol.Topic(t, protocol.LeafCmd), QoS: 1},
		{Topic: protocol.Topic(t, protocol.LeafPolicy), QoS: 1},
		{Topic: protocol.Topic(t, protocol.LeafLedger), QoS: 1},
	}})
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if u.o.OnTechnicians != nil {
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: protocol.Topic(t, protocol.LeafTechnicians), QoS: 1}}}); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	if u.o.Store != nil {
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: protocol.Topic(t, protocol.LeafRotated), QoS: 1}}}); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	if err := u.setupUpdates(ctx, cm); err != nil {
		return err
	}
	if err := u.publishState(ctx, cm, protocol.Online); err != nil {
		return err
	}
	u.publishTelemetry(ctx, cm)
	return nil
}

// maxRecord bounds the results recorded in one outbox commit.
const maxRecord = 256

// recorder records the results as they come: those that queued while
// the previous ones were being committed are recorded together, in one
// commit (Outbox.RecordAll). One goroutine where 64 each waited for a
// commit of its own result: the commits are as few, and a totem keeps
// 63 goroutine stacks less, which every garbage collection scans.
func (u *Uplink) recorder(ctx context.Context) {
	batch := make([]*protocol.Result, 0, maxRecord)
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-u.results:
			batch = append(batch[:0], b)
		}
	more:
		for len(batch) < maxRecord {
			select {
			case b := <-u.results:
				batch = append(batch, b)
			default:
				break more
			}
		}
		u.recordResults(batch)
		clear(batch)
	}
}

// receive handles a message from the broker. It runs on paho's delivery
// goroutine, so it never waits on the network: command replies are
// published from their own goroutine.
func (u *Uplink) receive(ctx context.Context, p *paho.Publish) {
	totem, leaf, ok := protocol.ParseTopic(p.Topic)
	if !ok || totem != u.o.Totem {
		u.log.Warn("message on unexpected topic dropped", "topic", p.Topic)
		return
	}
	switch leaf {
	case protocol.LeafResult:
		res, err := protocol.DecodeResult(p.Payload)
		if err != nil {
			u.log.Warn("result dropped", "err", err, "bytes", len(p.Payload))
			return
		}
		// A final result marks its op answered before the recorder can
		// see it: the op is not sent again while its result waits, and a
		// duplicate of it (the op was sent again before the first came)
		// is not queued behind it for nothing.
		marked := false
		if res.Final() {
			inflight, before := u.backlog.answered(res.OpID)
			if before {
				u.log.Debug("duplicate result skipped, the first waits for the recorder", "seq", res.Seq, "op_id", res.OpID)
				return
			}
			marked = inflight
		}
		select {
		case u.results <- res:
		default:
			// The operation will be sent again and its result repeated.
			if marked {
				u.backlog.unanswered(res.OpID)
			}
			u.log.Warn("result dropped, recorder busy")
		}
	case protocol.LeafPolicy:
		pol, err := protocol.DecodePolicy(p.Payload)
		if err != nil {
			u.log.Warn("policy dropped", "err", err, "bytes", len(p.Payload))
			return
		}
		if u.o.OnPolicy != nil {
			u.o.OnPolicy(pol)
		}
	case protocol.LeafCmd:
		u.command(ctx, p)
	case protocol.LeafTechnicians:
		if u.o.OnTechnicians != nil {
			u.o.OnTechnicians(p.Payload)
		}
	case protocol.LeafRotated:
		u.rot.rotated(p)
	case protocol.LeafUpdate:
		if u.o.OnUpdate != nil {
			u.o.OnUpdate(p.Payload)
		}
	case protocol.LeafLedger:
		l, err := protocol.DecodeLedger(p.Payload)
		if err != nil || l.Totem != u.o.Totem {
			u.log.Warn("ledger dropped", "err", err, "bytes", len(p.Payload))
			return
		}
		u.ledgers.Answer(l.ID, l)
	default:
		u.log.Warn("message on unexpected topic dropped", "topic", p.Topic)
	}
}

// recordResults records a round of results from the hub in the outbox.
func (u *Uplink) recordResults(rs []*protocol.Result) {
	for _, res := range rs {
		if res.Transport.Status == protocol.TransportRefused {
			// Refused: sent again from the hub's expected seq, or from this
			// one when the hub could not decide (its backend failed). The
			// cursor has moved past it: without a rewind it would wait forever.
			from := res.Expect
			if from == 0 {
				from = res.Seq
			}
			u.backlog.refused(res.OpID, from)
			u.log.Info("op refused by hub, will resend", "seq", res.Seq, "expect", res.Expect)
		}
	}
	if u.o.beforeRecord != nil {
		u.o.beforeRecord(len(rs))
	}
	es, errs := u.o.Outbox.RecordAll(rs)
	for i, res := range rs {
		if errs[i] != nil {
			if res.Final() {
				u.backlog.unanswered(res.OpID) // sent again, answered again
			}
			u.log.Warn("result not recorded", "op_id", res.OpID, "err", errs[i])
			continue
		}
		e := es[i]
		switch {
		case e.Done:
			u.backlog.done(res.OpID)
			u.log.Info("op done", "seq", e.Seq, "op_id", e.ID, "protocol", res.Transport.Protocol,
				"processing", res.Processing.Status, "duplicate", res.Duplicate)
		case res.Final():
			// Final, yet the entry is not done (a late result for a
			// voided entry): the timer judges the op again.
			u.backlog.unanswered(res.OpID)
		}
		u.wake.notify()
		if u.o.OnResult != nil {
			u.o.OnResult(e)
		}
	}
}

func (u *Uplink) command(ctx context.Context, p *paho.Publish) {
	if p.Properties == nil || p.Properties.ResponseTopic == "" {
		u.log.Warn("command without response topic dropped")
		return
	}
	rt := p.Properties.ResponseTopic
	totem, leaf, ok := protocol.ParseTopic(rt)
	if !ok || totem != u.o.Totem || len(leaf) <= len(protocol.LeafReply)+1 || leaf[:len(protocol.LeafReply)+1] != protocol.LeafReply+"/" {
		u.log.Warn("command with foreign response topic dropped", "response_topic", rt)
		return
	}
	corr := p.Properties.CorrelationData
	cmd, err := protocol.DecodeCommand(p.Payload)
	var reply *protocol.Reply
	switch {
	case err != nil:
		u.log.Warn("command refused", "err", err, "bytes", len(p.Payload))
		reply = &protocol.Reply{ID: "invalid", Error: "invalid command"}
	case u.o.OnCommand == nil:
		reply = &protocol.Reply{ID: cmd.ID, Error: "commands not supported"}
	default:
		reply = cmdsig.Authorize(u.o.Verifier, cmd, u.log)
	}
	refused := reply != nil && cmd != nil && u.o.OnCommand != nil
	u.cmds.Go(func() {
		switch {
		case refused && u.o.OnRefused != nil:
			u.o.OnRefused(cmd, reply)
		case reply != nil:
		case cmd.Name == "test_credentials": // the link's own (credtest.go)
			reply = u.testCredentials(ctx, cmd)
		default:
			reply = u.o.OnCommand(ctx, cmd)
		}
		reply.V = protocol.Version
		b, err := json.Marshal(reply)
		if err != nil {
			return
		}
		u.mu.Lock()
		cm := u.cm
		u.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = cm.Publish(pctx, &paho.Publish{Topic: rt, QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{CorrelationData: corr}})
		if err != nil {
			u.log.Warn("reply not sent", "err", err)
		}
	})
}

// ErrOffline is returned by the technician's actions that need the link.
var ErrOffline = errors.New("uplink: not connected")

func (u *Uplink) conn() (*autopaho.ConnectionManager, error) {
	u.mu.Lock()
	cm := u.cm
	u.mu.Unlock()
	if cm == nil || !u.connected.Load() {
		return nil, ErrOffline
	}
	return cm, nil
}

// Resend sends the operation id again at once, whatever its state, with
// the same op id: the hub applies it if it never did, or repeats the
// stored result (a duplicate, in both send logs). A quarantined entry goes
// back to the pending queue first and is sent in its turn.
func (u *Uplink) Resend(ctx context.Context, id string) (outbox.Entry, error) {
	e, err := u.o.Outbox.Get(id)
	if err != nil {
		return e, err
	}
	if e.Quarantine != "" {
		if err := u.o.Outbox.Requeue(id); err != nil {
			return e, err
		}
		u.backlog.rewindTo(e.Seq)
		u.wake.notify()
		return u.o.Outbox.Get(id)
	}
	cm, err := u.conn()
	if err != nil {
		return e, err
	}
	at := time.Now()
	if err := u.backlog.send(ctx, cm, e, at); err != nil {
		return e, fmt.Errorf("uplink: resend: %w", err)
	}
	if _, err := u.o.Outbox.MarkSentAll([]string{e.ID}, at); err != nil {
		return e, fmt.Errorf("uplink: resend: %w", err)
	}
	return e, nil
}

// Void gives up a quarantined entry (expired or poison): a void takes its
// sequence number and is sent in its turn, so the hub records the number
// as void and applies what follows it.
func (u *Uplink) Void(ctx context.Context, id string) (outbox.Entry, error) {
	if err := u.o.Outbox.Void(id); err != nil {
		return outbox.Entry{}, err
	}
	e, err := u.o.Outbox.Get(id)
	if err != nil {
		return e, err
	}
	u.backlog.rewindTo(e.Seq)
	u.wake.notify()
	return e, nil
}

// Ledger asks the hub for its record of this totem's operations with
// sequence numbers from..from+max-1 and waits for the answer.
func (u *Uplink) Ledger(ctx context.Context, from uint64, max int) (*protocol.Ledger, error) {
	return u.askLedger(ctx, protocol.LedgerRequest{V: protocol.Version,
		ID: fmt.Sprintf("sync-%d-%d", from, time.Now().UnixNano()), From: from, Max: max})
}

// CardState asks the hub for the CMS's state of the card with serial
// (issued, active, revoked, or protocol.CardUnknown) and waits for the
// answer until ctx ends. Offline it fails at once with ErrOffline.
func (u *Uplink) CardState(ctx context.Context, serial string) (string, error) {
	l, err := u.askLedger(ctx, protocol.LedgerRequest{V: protocol.Version,
		ID: fmt.Sprintf("card-%d", time.Now().UnixNano()), Card: serial})
	if err != nil {
		return "", err
	}
	if l.CardState == "" {
		return "", errors.New("uplink: card state: the hub gave none")
	}
	return l.CardState, nil
}

// awaitSubscribed waits, while connected, until the connection's
// subscriptions are in place: a request whose answer comes on one of them
// (a ledger, a card state) is sent only then. The wait is the session's
// setup, a round trip or two; ctx bounds it.
func (u *Uplink) awaitSubscribed(ctx context.Context) error {
	var tick *time.Ticker
	for u.subscribed.Load() != u.conns.Load() {
		if !u.connected.Load() {
			return ErrOffline
		}
		if tick == nil {
			tick = time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("uplink: ledger: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// askLedger publishes req on the totem's sync topic and waits for the
// Ledger answering it, once the connection's subscriptions are in place
// (the answer would be lost before).
func (u *Uplink) askLedger(ctx context.Context, req protocol.LedgerRequest) (*protocol.Ledger, error) {
	cm, err := u.conn()
	if err != nil {
		return nil, err
	}
	if err := u.awaitSubscribed(ctx); err != nil {
		return nil, err
	}
	ch, forget := u.ledgers.Add(req.ID)
	defer forget()
	b, _ := protocol.Marshal(req)
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(u.o.Totem, protocol.LeafSync), QoS: 1, Payload: b}); err != nil {
		return nil, fmt.Errorf("uplink: ledger request: %w", err)
	}
	select {
	case l := <-ch:
		if l.Error != "" {
			return nil, fmt.Errorf("uplink: ledger: hub: %s", l.Error)
		}
		return l, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("uplink: ledger: %w", ctx.Err())
	}
}

// sessions numbers the connections (State.Session): milliseconds since
// boot on the monotonic clock (Options.Mono; the wall clock without it),
// always above the previous number.
type sessions struct {
	mono func() time.Duration
	cur  atomic.Uint64 // the current connection's number
}

// next numbers a new connection.
func (s *sessions) next() uint64 {
	var n uint64
	if s.mono != nil {
		n = uint64(s.mono().Milliseconds())
	} else {
		n = uint64(time.Now().UnixMilli())
	}
	for {
		prev := s.cur.Load()
		if n <= prev {
			n = prev + 1
		}
		if s.cur.CompareAndSwap(prev, n) {
			return n
		}
	}
}

func (u *Uplink) publishState(ctx context.Context, cm *autopaho.ConnectionManager, status string) error {
	st := protocol.State{V: protocol.Version, Totem: u.o.Totem, Status: status,
		Since: time.Now().UTC(), Version: u.o.Version, Location: u.o.Location, ASL: u.o.ASL, Boot: u.o.Boot, Session: u.sessions.cur.Load()}
	if user := u.connUser(); status == protocol.Online && user != u.o.Totem {
		st.User = user
	}
	b, _ := protocol.Marshal(st)
	_, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(u.o.Totem, protocol.LeafState), QoS: 1, Retain: true, Payload: b})
	if err != nil {
		return fmt.Errorf("publish state: %w", err)
	}
	return nil
}

// connUser is the broker username the connection logged in with.
func (u *Uplink) connUser() string {
	if u.rot != nil && u.o.Store != nil {
		if user := u.rot.user(); user != "" {
			return user
		}
	}
	return u.o.Username
}

func (u *Uplink) publishTelemetry(ctx context.Context, cm *autopaho.ConnectionManager) {
	var t protocol.Telemetry
	if u.o.Telemetry != nil {
		t = u.o.Telemetry()
	} else if q, err := u.o.Outbox.Stats(); err == nil {
		t.Queue = q
	}
	t.V, t.Totem, t.At = protocol.Version, u.o.Totem, time.Now().UTC()
	t.ConnRefused = u.lastRefusal()
	b, _ := protocol.Marshal(t)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cm.Publish(pctx, &paho.Publish{Topic: protocol.Topic(u.o.Totem, protocol.LeafTelemetry), QoS: 0, Retain: true, Payload: b}); err != nil {
		u.log.Debug("telemetry not sent", "err", err)
		return
	}
	u.telemetrySent.Store(time.Now().UnixNano())
}

// Event publishes an alert on the totem's event topic (QoS 1) and a fresh
// health report, if connected; offline, the alert is dropped (the health
// report sent at the next connection carries the current state).
func (u *Uplink) Event(e protocol.Event) {
	u.mu.Lock()
	cm := u.cm
	u.mu.Unlock()
	if cm == nil || !u.connected.Load() {
		u.log.Debug("event not sent: offline", "code", e.Code)
		return
	}
	e.V, e.Totem, e.At = protocol.Version, u.o.Totem, time.Now().UTC()
	b, err := protocol.Marshal(e)
	if err != nil {
		return
	}
	u.cmds.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(u.o.Totem, protocol.LeafEvent), QoS: 1, Payload: b}); err != nil {
			u.log.Debug("event not sent", "code", e.Code, "err", err)
		}
		u.publishTelemetry(ctx, cm)
	})
}

// PublishTelemetry sends a health report now (e.g. after an operation),
// if connected.
func (u *Uplink) PublishTelemetry(ctx context.Context) {
	u.mu.Lock()
	cm := u.cm
	u.mu.Unlock()
	if cm != nil && u.connected.Load() {
		u.publishTelemetry(ctx, cm)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
