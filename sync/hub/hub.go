// Package hub is totemhub's ingest: an ordinary MQTT 5 client of the broker
// (embedded or external) that takes operations from a shared subscription,
// so several hub instances split the load, applies each exactly once and in
// sequence per totem to the CMS backend, and answers every totem on its
// result topic with the transport and processing outcomes. It also
// publishes the consent policy, retained, to each totem that comes online.
package hub

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

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/internal/lograte"
	"github.com/aslcns/totem/internal/mqttconn"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/techset"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/time/rate"
)

// Options configures a Hub.
type Options struct {
	URL string
	// TLS is the client configuration for an mqtts:// URL (pki.Client
	// builds it); CAFile, the file it trusts, only names it in the log.
	TLS      *tls.Config
	CAFile   string
	ClientID string // unique per instance
	Username string
	Password string
	Backend  cms.Backend
	Logger   *slog.Logger
	// Verifier checks the signature, role, expiry and nonce of every
	// console command on the hub's command topic (target
	// cmdsig.HubTarget); nil refuses them all.
	Verifier *cmdsig.Verifier
	// Accounts is the embedded broker's user registry, for the unlock and
	// locks commands (accounts.go) and the totems' rotations (rotate.go);
	// nil on an external broker.
	Accounts Accounts
	// Enroller exchanges enrollment codes (enroll.go), valid
	// EnrollValidity (default 7 days); nil on an external broker.
	Enroller       Enroller
	EnrollValidity time.Duration
	// ReceiveMaximum is the MQTT 5 receive maximum the hub asks of the
	// broker: how many QoS 1 messages may be on their way to it without
	// its acknowledgement; the broker holds the rest. 0 sends none, which
	// means 65 535 to a broker that keeps to MQTT 5; the embedded broker
	// (mochi v2.7.9) then sets no quota at all, which is what it needs: a
	// quota it exhausts makes it hold messages badly (released out of
	// order, one per acknowledgement, stalling after a quota's worth, and
	// a recursive read lock that can hang the broker), so set one only
	// for another broker.
	ReceiveMaximum uint16 // default 0: not sent
	// Queue bounds the operations taken from the broker (acknowledged)
	// and not yet answered. When it is full the hub stops taking, and so
	// stops acknowledging: the broker holds what follows (receive
	// maximum). Nothing acknowledged is ever dropped.
	Queue int // default 65536; never below ReceiveMaximum
	// Fleet, when set, is the fleet registry the hub keeps up to date
	// from presence, telemetry and operations, and answers the console's
	// fleet command from.
	Fleet *Fleet
	// Jobs answers the fleet job commands (job_create, job_status,
	// job_cancel: sync/update/rollout) for the console named console;
	// nil refuses them.
	Jobs func(console, name string, args map[string]string) (json.RawMessage, error)
	// Technicians is the technician set (technicians.go) and TechKey the
	// hub's ops key that signs it for each totem; either nil refuses the
	// technician commands and pushes nothing.
	Technicians *techset.Store
	TechKey     *cmdsig.PrivateKey
	// Audit, when set, is the central audit (sync/audit): the entries
	// totems send as operations of kind audit, the console commands the
	// hub runs or refuses, and what Audit is given.
	Audit *audit.Store
	// Local, when set, is the embedded broker the hub runs in (URL is
	// its address): the hub takes the operations from it in-process and
	// answers them through it (see Local); everything else goes through
	// the MQTT connection. nil on an external broker.
	Local Local
	// Partition, when set on an external broker, is the hub's share of
	// the totems (partition.go); nil: the hubs share the subscription.
	Partition Partition
}

// Local is the embedded broker, in the hub's own process
// (broker.Server). Taking the operations from it, the hub holds a totem
// back by waiting (the broker then reads nothing more from that totem)
// instead of leaving the broker a store of unacknowledged messages to
// keep; and nothing is encoded, sent and acknowledged twice.
type Local interface {
	// Subscribe calls handle for each message published on filter, in
	// each publisher's order, on that publisher's goroutine: while
	// handle waits the broker reads nothing more from that publisher.
	// payload is valid during the call only.
	Subscribe(filter string, handle func(topic string, payload []byte)) error
	Unsubscribe(filter string) error
	// Publish delivers payload on topic, at QoS qos at most.
	Publish(topic string, payload []byte, qos byte) error
}

// localQueue is the queue's default with a Local broker: past it the
// totems wait (a few hundred operations a batch, a few batches ahead),
// and a storm's operations in flight stay in the totems' windows, not in
// the hub's memory.
const localQueue = 4096

// opFilter is the operations' filter on a Local broker: the only
// consumer, no share.
const opFilter = protocol.Root + "/+/" + protocol.LeafOp

// How long an out-of-order operation waits for its predecessor, which
// another instance may be applying, before the totem is asked to resend.
const (
	gapWindow   = 64 // only for gaps this small: larger ones are real losses
	reorderWait = time.Second
	maxHold     = 10 * time.Second     // below the uplink's ResendAfter (15 s)
	gapPause    = 5 * time.Millisecond // how often held operations are tried again
	maxBatch    = 256                  // operations applied in one commit at most
	quantum     = 8                    // operations of one totem per turn of a batch
	publishers  = 32                   // results in flight at once
)

// Hub is one ingest instance.
type Hub struct {
	o     Options
	log   *slog.Logger
	stats Stats

	// cmds are the goroutines paho's callbacks start (console commands and
	// sync requests being answered, the subscription after a connection):
	// Run closes the set before it disconnects, so none starts while or
	// after it waits.
	cmds    goset.Set
	cmdPool pool

	logs      lograte.Limiter // lines that a totem's repeats would multiply
	auditRate lograte.Limiter // refused commands recorded in the audit (audit.go)
	enr       enrollState     // enroll.go
	rotations atomic.Int64    // rotate.go

	// The hub's sides, each a job (they share the Hub's state).
	ing   ingest     // ingest.go: operations in, results out
	con   commands   // console.go: the console's commands
	rsy   resync     // resync.go: the totems' sync requests
	enrol enrollment // enroll.go, rotate.go: enrollment and rotation

	mu         sync.Mutex
	cm         *autopaho.ConnectionManager
	policySent map[string]bool // totems sent the policy on this connection
	subscribed atomic.Bool     // this connection's SUBACK came back

	ops opSubs // partition.go: a partitioned hub's per-totem operation subscriptions
}

// Stats counts what the hub did.
type Stats struct {
	Applied    atomic.Int64 // operations applied (accepted or rejected)
	Duplicates atomic.Int64 // operations seen again, stored result re-sent
	Gaps       atomic.Int64 // operations refused for a sequence gap
	Malformed  atomic.Int64 // payloads refused
	Dropped    atomic.Int64 // operations acknowledged to the broker and then dropped: stays 0
	Full       atomic.Int64 // times the queue was full and the hub stopped taking (flow control)
	Batches    atomic.Int64 // batches handed to the backend (one commit each for a BatchBackend)
	Foreign    atomic.Int64 // operations of totems another hub owns, dropped (Options.Partition)
	// Requests dropped, not logged: console commands while cmdPool are
	// answered, sync requests over a totem's rate or while syncPool are.
	CommandsDropped atomic.Int64
	SyncDropped     atomic.Int64
	// Operations refused because the backend failed (a database down):
	// the totems send them again. storecheck.go.
	Unavailable atomic.Int64
	// Console commands to the hub: answered ok, authorised but failed
	// (bad arguments, unknown command), refused by cmdsig code.
	CommandsOK     atomic.Int64
	CommandsFailed atomic.Int64
	refused        map[string]*atomic.Int64 // every cmdsig.Codes, filled by New; read-only after
	kinds          kindStats                // applied by kind and outcome (stats.go)
	batch          latency                  // the backend's time per batch
}

// RefusedByCode returns the console commands refused, by cmdsig code
// (every code, zero included; a malformed command counts as "invalid").
func (s *Stats) RefusedByCode() map[string]int64 {
	m := make(map[string]int64, len(s.refused))
	for c, n := range s.refused {
		m[c] = n.Load()
	}
	return m
}

func (s *Stats) refuse(code string) {
	if n := s.refused[code]; n != nil {
		n.Add(1)
	} else {
		s.refused[codeOther].Add(1)
	}
}

const (
	codeInvalid = "invalid" // a payload that is not a command
	codeOther   = "other"   // a code cmdsig.Codes does not list
)

// New returns a hub; it does nothing until Run.
func New(o Options) *Hub {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Local != nil && o.Queue == 0:
		o.Queue = localQueue
	case o.Local == nil:
		if o.Queue == 0 {
			o.Queue = 65536
		}
		// The queue holds at least what the broker may send
		// unacknowledged, so a broker that keeps to the receive maximum
		// never finds it full.
		rm := int(o.ReceiveMaximum)
		if rm == 0 {
			rm = 65535
		}
		o.Queue = max(o.Queue, rm)
	}
	h := &Hub{o: o, log: o.Logger, policySent: make(map[string]bool)}
	h.ing = ingest{h: h, work: make(chan *paho.Publish, 4096)}
	h.con, h.rsy, h.enrol = commands{h}, resync{h: h}, enrollment{h}
	h.stats.kinds = newKindStats()
	h.stats.refused = make(map[string]*atomic.Int64, len(cmdsig.Codes)+2)
	for _, c := range append([]string{codeInvalid, codeOther}, cmdsig.Codes...) {
		h.stats.refused[c] = new(atomic.Int64)
	}
	h.cmdPool = pool{slots: make(chan struct{}, cmdPool), set: &h.cmds}
	h.rsy.pool = pool{slots: make(chan struct{}, syncPool), set: &h.cmds}
	h.enr.pool, h.enr.limit = pool{slots: make(chan struct{}, enrollPool), set: &h.cmds}, rate.NewLimiter(rate.Every(enrollEvery), enrollBurst)
	return h
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Queued is the number of operations waiting in the hub's queue (0
// before Run).
func (h *Hub) Queued() int {
	if q := h.ing.queue.Load(); q != nil {
		return q.len()
	}
	return 0
}

// Run connects and serves until ctx is done.
func (h *Hub) Run(ctx context.Context) error {
	srv, err := url.Parse(h.o.URL)
	if err != nil {
		return fmt.Errorf("hub: broker url: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newFair(h.o.Queue)
	h.ing.queue.Store(q)
	if h.o.Local != nil {
		if err := h.o.Local.Subscribe(opFilter, func(topic string, payload []byte) {
			h.ing.local(ctx, q, topic, payload)
		}); err != nil {
			return fmt.Errorf("hub: embedded broker: %w", err)
		}
		defer h.o.Local.Unsubscribe(opFilter)
	}
	var wg sync.WaitGroup
	if p := h.partition(); p != nil {
		n := -1
		h.rebalanceOnce(ctx, p, &n) // a share before the subscription
		wg.Go(func() { h.rebalance(ctx, p) })
	}
	var fatal atomic.Pointer[error]
	cm, err := autopaho.NewConnection(ctx, h.clientConfig(ctx, srv, &fatal, cancel))
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.mu.Lock()
	h.cm = cm
	h.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.ing.worker(ctx, cm, q)
	}()
	<-ctx.Done()
	wg.Wait()
	h.cmds.Close()
	st := &h.stats
	h.log.Info("ingest stopped", "applied", st.Applied.Load(), "duplicates", st.Duplicates.Load(),
		"gaps", st.Gaps.Load(), "malformed", st.Malformed.Load(), "dropped", st.Dropped.Load(),
		"queue_full", st.Full.Load(), "batches", st.Batches.Load(), "foreign", st.Foreign.Load())
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	cm.Disconnect(dctx)
	dcancel()
	<-cm.Done()
	if err := fatal.Load(); err != nil {
		return *err
	}
	return nil
}

// clientConfig is the hub's MQTT connection: on each connection it
// subscribes anew (subscribe); a broker refusing its credentials is fatal
// (fatal, cancel).
func (h *Hub) clientConfig(ctx context.Context, srv *url.URL, fatal *atomic.Pointer[error], cancel context.CancelFunc) autopaho.ClientConfig {
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{srv},
		TlsCfg:                        h.o.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(200*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectUsername:               h.o.Username,
		ConnectPassword:               []byte(h.o.Password),
		ConnectPacketBuilder:          receiveMaximum(h.o.ReceiveMaximum),
		// Buffered reads and coalesced writes (internal/mqttconn): the
		// hub reads a packet per operation, presence and telemetry
		// message, and writes an acknowledgement and a result each.
		AttemptConnection: func(ctx context.Context, cfg autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			return mqttconn.Dial(ctx, u, cfg.TlsCfg, cfg.ConnectTimeout)
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			h.mu.Lock()
			h.policySent = make(map[string]bool)
			h.mu.Unlock()
			h.subscribed.Store(false)
			// Subscribing waits for the SUBACK: not on paho's goroutine.
			h.cmds.Go(func() { h.subscribe(ctx, cm) })
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && (ce.ReasonCode == 0x86 || ce.ReasonCode == 0x87) {
				err := fmt.Errorf("hub: broker refused the hub's credentials (reason %d)", ce.ReasonCode)
				fatal.Store(&err)
				cancel()
				return
			}
			h.log.Warn("connect failed", "err", pki.Explain(err, srv.Host, h.o.CAFile))
		},
		ClientConfig: paho.ClientConfig{
			ClientID: h.o.ClientID,
			// paho acknowledges a PUBLISH when the handlers return, so
			// a message is acknowledged only once receive has placed it
			// in the hub's queue, and receive waits for room when the
			// queue is full. (paho's manual acknowledgement gives nothing
			// more here and costs a scan of every unacknowledged message
			// per message: it fell behind in a storm until the broker's
			// store for the hub overflowed.)
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) { h.receive(ctx, pr.Packet); return true, nil },
			},
		},
	}
}

// subscribe takes the hub's subscriptions on a new connection, waiting
// for the SUBACK (on a goroutine of h.cmds, not paho's).
func (h *Hub) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	subs := subscriptions(&h.o)
	_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil {
		h.log.Error("subscribe failed", "err", err)
		return
	}
	if p := h.partition(); p != nil {
		// A new connection has none of the totems' subscriptions (the
		// session may not have persisted): all of them again.
		n, err := h.syncOps(ctx, cm, p, true)
		if err != nil { // the next rebalance tick subscribes the rest
			h.log.Warn("subscribe failed", "err", err)
		}
		h.subscribed.Store(true)
		h.log.Info("ingest subscribed", "filter", protocol.Topic("<totem>", protocol.LeafOp), "totems", n)
		return
	}
	h.subscribed.Store(true)
	h.log.Info("ingest subscribed", "filter", opSubscription(&h.o))
}

// subscriptions are the hub's filters for its options.
func subscriptions(o *Options) []paho.SubscribeOptions {
	// Presence and telemetry without the retained copies (RetainHandling
	// 2): the fleet registry keeps what they said across restarts, and
	// the next telemetry refreshes it; and mochi v2.7.9 reads a topic's
	// retained path without a lock while a wildcard subscription replays
	// them (TopicsIndex.scanMessages against RetainMessage, mochi issue
	// #200): a hub resubscribing while totems publish their state was a
	// data race (TestReconnectStorm under -race).
	subs := []paho.SubscribeOptions{
		{Topic: protocol.Root + "/+/" + protocol.LeafState, QoS: 1, RetainHandling: 2},
		{Topic: protocol.Root + "/+/" + protocol.LeafTelemetry, QoS: 0, RetainHandling: 2},
		{Topic: protocol.Root + "/+/" + protocol.LeafEvent, QoS: 0}, // the console's recent events
		{Topic: protocol.SharedHubCmdTopic, QoS: 1},
		{Topic: protocol.SharedSyncFilter, QoS: 1},
	}
	if o.Local == nil && o.Partition == nil { // else in-process (ingest.local), or per totem (partition.go)
		subs = append(subs, paho.SubscribeOptions{Topic: protocol.SharedOpFilter, QoS: 1})
	}
	if o.Enroller != nil {
		subs = append(subs, paho.SubscribeOptions{Topic: enroll.RequestFilter, QoS: 1})
	}
	if o.Accounts != nil {
		subs = append(subs, paho.SubscribeOptions{Topic: protocol.SharedRotateFilter, QoS: 1})
	}
	return subs
}

// receiveMaximum builds the CONNECT with the receive maximum rm, or
// without one when rm is 0 (Options.ReceiveMaximum).
func receiveMaximum(rm uint16) func(*paho.Connect, *url.URL) (*paho.Connect, error) {
	return func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
		if rm == 0 {
			return c, nil
		}
		if c.Properties == nil {
			// As without properties: the broker's reason strings asked for.
			c.Properties = &paho.ConnectProperties{RequestProblemInfo: true}
		}
		rm := rm
		c.Properties.ReceiveMaximum = &rm
		return c, nil
	}
}

// publish sends p on the hub's connection, waiting 10 s at most: the
// replies to a console, a totem's sync, rotation and enrollment requests.
func (h *Hub) publish(p *paho.Publish) error {
	h.mu.Lock()
	cm := h.cm
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cm.Publish(ctx, p)
	return err
}

// AwaitConnection waits until the hub is connected and its subscriptions
// are in place: an operation published before that would reach no one.
func (h *Hub) AwaitConnection(ctx context.Context) error {
	for {
		h.mu.Lock()
		cm := h.cm
		h.mu.Unlock()
		if cm != nil {
			if err := cm.AwaitConnection(ctx); err != nil {
				return err
			}
			if h.subscribed.Load() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// receive runs on paho's delivery goroutine: it hands the message to the
// worker (or a console command or sync request to its pool, telemetry to
// the fleet registry). When the worker's queue is full it waits for room:
// paho acknowledges the message only after receive returns, so the
// broker, bound by the receive maximum, holds what follows.
func (h *Hub) receive(ctx context.Context, p *paho.Publish) {
	if h.enrol.credentialRequest(p) { // rotate.go
		return
	}
	totem, leaf, _ := protocol.ParseTopic(p.Topic)
	if h.dispatchRequest(p, totem, leaf) {
		return
	}
	if leaf == protocol.LeafOp && h.foreign(totem) {
		return // its owner has its own copy (partition.go)
	}
	if h.o.Fleet != nil && h.o.Fleet.observe(p) {
		return // presence or telemetry: the registry has it
	}
	select {
	case h.ing.work <- p:
		return
	default:
	}
	h.stats.Full.Add(1)
	select {
	case h.ing.work <- p:
	case <-ctx.Done():
		// Shutting down: not applied, and the acknowledgement changes
		// nothing: the session ends with the connection (clean start),
		// and the totem sends again what has no result.
	}
}
