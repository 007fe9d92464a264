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
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/internal/lograte"
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
	work  chan *paho.Publish
	stats Stats

	// cmds are the goroutines paho's callbacks start (console commands and
	// sync requests being answered, the subscription after a connection):
	// Run closes the set before it disconnects, so none starts while or
	// after it waits.
	cmds     goset.Set
	cmdPool  pool
	syncPool pool
	syncGate syncGate

	logs      lograte.Limiter // lines that a totem's repeats would multiply
	auditRate lograte.Limiter // refused commands recorded in the audit (audit.go)
	enr       enrollState     // enroll.go
	rotations atomic.Int64    // rotate.go

	queue atomic.Pointer[fair] // the worker's, for Queued

	mu         sync.Mutex
	cm         *autopaho.ConnectionManager
	policySent map[string]bool // totems sent the policy on this connection
	subscribed atomic.Bool     // this connection's SUBACK came back
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
	h := &Hub{o: o, log: o.Logger, work: make(chan *paho.Publish, 4096), policySent: make(map[string]bool)}
	h.stats.kinds = newKindStats()
	h.stats.refused = make(map[string]*atomic.Int64, len(cmdsig.Codes)+2)
	for _, c := range append([]string{codeInvalid, codeOther}, cmdsig.Codes...) {
		h.stats.refused[c] = new(atomic.Int64)
	}
	h.cmdPool = pool{slots: make(chan struct{}, cmdPool), set: &h.cmds}
	h.syncPool = pool{slots: make(chan struct{}, syncPool), set: &h.cmds}
	h.enr.pool, h.enr.limit = pool{slots: make(chan struct{}, enrollPool), set: &h.cmds}, rate.NewLimiter(rate.Every(enrollEvery), enrollBurst)
	return h
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Queued is the number of operations waiting in the hub's queue (0
// before Run).
func (h *Hub) Queued() int {
	if q := h.queue.Load(); q != nil {
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
	h.queue.Store(q)
	if h.o.Local != nil {
		if err := h.o.Local.Subscribe(opFilter, func(topic string, payload []byte) {
			h.local(ctx, q, topic, payload)
		}); err != nil {
			return fmt.Errorf("hub: embedded broker: %w", err)
		}
		defer h.o.Local.Unsubscribe(opFilter)
	}
	var fatal atomic.Pointer[error]
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{srv},
		TlsCfg:                        h.o.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(200*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectUsername:               h.o.Username,
		ConnectPassword:               []byte(h.o.Password),
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if h.o.ReceiveMaximum == 0 {
				return c, nil
			}
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			rm := h.o.ReceiveMaximum
			c.Properties.ReceiveMaximum = &rm
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			h.mu.Lock()
			h.policySent = make(map[string]bool)
			h.mu.Unlock()
			h.subscribed.Store(false)
			// Subscribing waits for the SUBACK: not on paho's goroutine.
			h.cmds.Go(func() {
				// Presence and telemetry without the retained copies
				// (RetainHandling 2): the fleet registry keeps what
				// they said across restarts, and the next telemetry
				// refreshes it; and mochi v2.7.9 reads a topic's
				// retained path without a lock while a wildcard
				// subscription replays them (TopicsIndex.scanMessages
				// against RetainMessage, mochi issue #200): a hub
				// resubscribing while totems publish their state was a
				// data race (TestReconnectStorm under -race).
				subs := []paho.SubscribeOptions{
					{Topic: protocol.Root + "/+/" + protocol.LeafState, QoS: 1, RetainHandling: 2},
					{Topic: protocol.Root + "/+/" + protocol.LeafTelemetry, QoS: 0, RetainHandling: 2},
					{Topic: protocol.Root + "/+/" + protocol.LeafEvent, QoS: 0}, // the console's recent events
					{Topic: protocol.SharedHubCmdTopic, QoS: 1},
					{Topic: protocol.SharedSyncFilter, QoS: 1},
				}
				if h.o.Local == nil { // else in-process: local below
					subs = append(subs, paho.SubscribeOptions{Topic: protocol.SharedOpFilter, QoS: 1})
				}
				if h.o.Enroller != nil {
					subs = append(subs, paho.SubscribeOptions{Topic: enroll.RequestFilter, QoS: 1})
				}
				if h.o.Accounts != nil {
					subs = append(subs, paho.SubscribeOptions{Topic: protocol.SharedRotateFilter, QoS: 1})
				}
				_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
				if err != nil {
					h.log.Error("subscribe failed", "err", err)
					return
				}
				h.subscribed.Store(true)
				h.log.Info("ingest subscribed", "filter", protocol.SharedOpFilter)
			})
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
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.mu.Lock()
	h.cm = cm
	h.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.worker(ctx, cm, q)
	}()
	<-ctx.Done()
	wg.Wait()
	h.cmds.Close()
	st := &h.stats
	h.log.Info("ingest stopped", "applied", st.Applied.Load(), "duplicates", st.Duplicates.Load(),
		"gaps", st.Gaps.Load(), "malformed", st.Malformed.Load(), "dropped", st.Dropped.Load(),
		"queue_full", st.Full.Load(), "batches", st.Batches.Load())
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	cm.Disconnect(dctx)
	dcancel()
	<-cm.Done()
	if err := fatal.Load(); err != nil {
		return *err
	}
	return nil
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
	if h.credentialRequest(p) { // rotate.go
		return
	}
	if totem, leaf, _ := protocol.ParseTopic(p.Topic); h.dispatchRequest(p, totem, leaf) {
		return
	}
	if h.o.Fleet != nil && h.o.Fleet.observe(p) {
		return // presence or telemetry: the registry has it
	}
	select {
	case h.work <- p:
		return
	default:
	}
	h.stats.Full.Add(1)
	select {
	case h.work <- p:
	case <-ctx.Done():
		// Shutting down: not applied, and the acknowledgement changes
		// nothing: the session ends with the connection (clean start),
		// and the totem sends again what has no result.
	}
}

// local takes an operation from the embedded broker (Options.Local) into
// the queue, on its totem's connection goroutine: when the queue is full
// it waits for room, and the broker reads nothing more from that totem
// meanwhile. What the broker acknowledged to the totem is either queued
// or, when the hub stops, left to the totem to send again (no result).
func (h *Hub) local(ctx context.Context, q *fair, topic string, payload []byte) {
	op := h.decodeOp(topic, payload)
	if op == nil {
		return
	}
	if _, waited := q.push(ctx, pending{op: op, arrived: time.Now()}); waited {
		h.stats.Full.Add(1)
	}
}

// heldKey names a held operation: ids are unique per totem only, and a
// totem reusing another's id must not stand in for it.
type heldKey struct{ totem, id string }

func keyOf(op *protocol.Op) heldKey { return heldKey{op.Totem, op.ID} }

// pending is an operation on its way through the worker.
type pending struct {
	op      *protocol.Op
	arrived time.Time // taken from the broker
	since   time.Time // first tried: bounds how long a gap is waited for
}

// hold is how long an operation waits for a missing predecessor: the
// reorder window, plus twice what it waited in this hub's queue: in a
// storm the predecessor, on another instance sharing the subscription,
// waits about as long in that one's.
func (p pending) hold() time.Duration {
	return min(reorderWait+2*p.since.Sub(p.arrived), maxHold)
}

// worker applies what receive hands over, in batches: each batch is sorted
// by totem and sequence and applied in one commit when the backend can;
// an operation whose predecessor has not arrived yet is held for a short
// reorder window (another instance, or a concurrent send, may bring it)
// before the totem is told to send again. Batches take a few operations
// of each waiting totem in turn (fair), so a totem with a long backlog
// never makes the others wait behind it. Results go out through a small
// pool of publishers so a slow PUBACK never stalls the ingest.
func (h *Hub) worker(ctx context.Context, cm *autopaho.ConnectionManager, q *fair) {
	results := make(chan outgoing, maxBatch)
	var pubs sync.WaitGroup
	for range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for r := range results {
				h.publishResult(ctx, cm, r.totem, r.res)
			}
		}()
	}
	defer func() {
		close(results)
		pubs.Wait()
	}()
	pubs.Add(1)
	go func() {
		defer pubs.Done()
		h.intake(ctx, cm, q)
	}()
	held := make(map[heldKey]pending)
	var pause backendPause // storecheck.go
	for {
		if q.len() == 0 {
			if len(held) == 0 {
				select {
				case <-ctx.Done():
					return
				case <-q.ready:
				}
			} else {
				t := time.NewTimer(gapPause)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-q.ready:
				case <-t.C:
				}
				t.Stop()
			}
		}
		batch := h.collect(held, q)
		if len(batch) == 0 {
			continue
		}
		began := time.Now()
		outs, err := h.apply(ctx, batch)
		h.stats.batch.observe(time.Since(began))
		var auditErr error // the batch's audit entries not recorded: their totems send them again
		if err == nil {
			var entries []*protocol.Op
			for i, p := range batch {
				if isAudit(p.op, outs[i]) {
					entries = append(entries, p.op)
				}
			}
			if auditErr = h.auditOps(entries); auditErr != nil {
				h.limited(slog.LevelError, "audit", "audit entries not recorded", "n", len(entries), "err", auditErr)
			}
		}
		var refused []cms.Transmission // for the send log
		answers := make([]outgoing, 0, len(batch))
		for i, p := range batch {
			res := &protocol.Result{V: protocol.Version, OpID: p.op.ID, Seq: p.op.Seq}
			switch {
			case err != nil:
				// The backend could not decide: say so; the totem sends it again.
				h.stats.Unavailable.Add(1)
				h.limited(slog.LevelError, "apply", "apply failed", "totem", p.op.Totem, "seq", p.op.Seq, "err", err)
				res.Transport = protocol.Transport{Status: protocol.TransportRefused, At: time.Now().UTC()}
				res.Processing = protocol.Processing{Status: protocol.ProcessingPending}
			case outs[i].OutOfOrder && p.op.Seq-outs[i].Expect < gapWindow && time.Since(p.since) < p.hold():
				held[keyOf(p.op)] = p
				continue
			case outs[i].OutOfOrder:
				h.stats.Gaps.Add(1)
				h.limited(slog.LevelInfo, "gap/"+p.op.Totem, "sequence gap", "totem", p.op.Totem, "seq", p.op.Seq, "expect", outs[i].Expect)
				res.Transport = protocol.Transport{Status: protocol.TransportRefused, At: outs[i].At}
				res.Processing = protocol.Processing{Status: protocol.ProcessingPending}
				res.Expect = outs[i].Expect
				refused = append(refused, cms.Transmission{At: outs[i].At, Totem: p.op.Totem, Seq: p.op.Seq,
					OpID: p.op.ID, Kind: p.op.Kind, Stamp: stampOf(p.op.Stamp), Expect: outs[i].Expect})
			case auditErr != nil && isAudit(p.op, outs[i]):
				// Not in the audit: the totem is told to send it again, and
				// the CMS's stored outcome (a duplicate) leads here again.
				res.Transport = protocol.Transport{Status: protocol.TransportRefused, At: time.Now().UTC()}
				res.Processing = protocol.Processing{Status: protocol.ProcessingPending}
			default:
				h.outcome(p.op, outs[i], res)
			}
			delete(held, keyOf(p.op))
			if h.o.Fleet != nil {
				h.o.Fleet.answered(p.op, res)
			}
			answers = append(answers, outgoing{p.op.Totem, res})
		}
		if sl, ok := h.o.Backend.(cms.SendLogger); ok && len(refused) > 0 {
			// Gaps are rare (the reorder window absorbs most): their own
			// commit, before the answers go out, so that a technician who
			// saw a refusal finds it in the send log.
			if err := sl.LogRefused(refused); err != nil {
				h.limited(slog.LevelWarn, "sendlog", "send log: refusals not recorded", "n", len(refused), "err", err)
			}
		}
		for _, a := range answers {
			select {
			case results <- a:
			case <-ctx.Done():
				return
			}
		}
		if !pause.after(ctx, err) {
			return
		}
	}
}

// fair is the worker's queue of decoded operations, one FIFO per totem,
// served in turn, bounded: a pusher waits for room when it is full, and
// those waiting are let in in the order they came, by take itself, before
// any newcomer: with an in-process broker every totem pushes from its
// own connection, and a totem whose push just succeeded would otherwise
// push its next operation ahead of those that had waited, for as long as
// it had more (some totems starved for seconds, then sent everything
// again after their silence).
type fair struct {
	ready chan struct{} // an operation was added

	mu      sync.Mutex
	by      map[string][]pending
	ring    []string // totems with operations waiting, in turn order
	next    int      // whose turn it is
	n       int      // operations waiting
	max     int
	waiters []*waiter // pushers waiting for room, in the order they came
}

// waiter is a push waiting for room: take adds p and closes in.
type waiter struct {
	p  pending
	in chan struct{}
}

func newFair(max int) *fair {
	return &fair{by: make(map[string][]pending), max: max, ready: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (f *fair) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// add queues p. Under f.mu.
func (f *fair) add(p pending) {
	t := p.op.Totem
	if len(f.by[t]) == 0 {
		f.ring = append(f.ring, t)
	}
	f.by[t] = append(f.by[t], p)
	f.n++
}

// push adds p, waiting for room behind those already waiting; queued is
// false if ctx ended first, waited says whether it had to wait.
func (f *fair) push(ctx context.Context, p pending) (queued, waited bool) {
	f.mu.Lock()
	if f.n < f.max && len(f.waiters) == 0 {
		f.add(p)
		f.mu.Unlock()
		signal(f.ready)
		return true, false
	}
	w := &waiter{p: p, in: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	select {
	case <-w.in:
		return true, true
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.Index(f.waiters, w); i >= 0 {
		f.waiters = slices.Delete(f.waiters, i, i+1)
		return false, true
	}
	return true, true // let in meanwhile
}

// take appends up to max operations to batch, quantum per totem per turn,
// continuing where the previous batch stopped, then lets in those waiting
// for the room it made, in order.
func (f *fair) take(batch []pending, max int) []pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	for max > 0 && f.n > 0 {
		if f.next >= len(f.ring) {
			f.next = 0
		}
		t := f.ring[f.next]
		ops := f.by[t]
		k := min(quantum, max, len(ops))
		batch = append(batch, ops[:k]...)
		max -= k
		f.n -= k
		if k == len(ops) {
			delete(f.by, t)
			f.ring = append(f.ring[:f.next], f.ring[f.next+1:]...)
			continue // the next totem moved into this turn
		}
		f.by[t] = ops[k:]
		f.next++
	}
	k := 0
	for ; k < len(f.waiters) && f.n < f.max; k++ {
		f.add(f.waiters[k].p)
		close(f.waiters[k].in)
	}
	f.waiters = slices.Delete(f.waiters, 0, k)
	return batch
}

// intake decodes what receive hands over into the fair queue as fast as
// it comes (presence messages are handled on the way), so that receive
// only waits when the queue is full, not while a batch commits.
func (h *Hub) intake(ctx context.Context, cm *autopaho.ConnectionManager, q *fair) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-h.work:
			if op := h.decode(ctx, cm, m); op != nil {
				if queued, _ := q.push(ctx, pending{op: op, arrived: time.Now()}); !queued {
					return
				}
			}
		}
	}
}

// stampOf converts a totem's clock stamp for the backend.
func stampOf(s *protocol.Stamp) *cms.Stamp {
	if s == nil {
		return nil
	}
	return &cms.Stamp{Boot: s.Boot, Mono: s.Mono, Wall: s.Wall, Synced: s.Synced}
}

// collect makes a batch of the held operations and a fair share of the
// queue, sorted by totem and sequence.
func (h *Hub) collect(held map[heldKey]pending, q *fair) []pending {
	batch := make([]pending, 0, maxBatch)
	for _, p := range held {
		batch = append(batch, p)
	}
	// Held operations never take the whole batch: their predecessors
	// may be waiting in the queue.
	n := len(batch)
	batch = q.take(batch, max(maxBatch-n, maxBatch/2))
	// Every copy of an operation gets its answer (the backend says
	// "duplicate"), except copies of one already held: it is answered
	// when it leaves the hold.
	kept := batch[:n]
	for _, p := range batch[n:] {
		if _, ok := held[keyOf(p.op)]; !ok {
			kept = append(kept, p)
		}
	}
	batch = kept
	// The reorder window starts when an operation is first tried, not
	// when it arrived: in a storm it may wait in the queue longer than
	// the window, and its predecessor, on another instance, as long.
	now := time.Now()
	for i := range batch {
		if batch[i].since.IsZero() {
			batch[i].since = now
		}
	}
	sort.SliceStable(batch, func(i, j int) bool {
		a, b := batch[i].op, batch[j].op
		if a.Totem != b.Totem {
			return a.Totem < b.Totem
		}
		return a.Seq < b.Seq
	})
	return batch
}

// decode returns the operation m carries, or nil after handling a presence
// message or dropping a malformed one.
func (h *Hub) decode(ctx context.Context, cm *autopaho.ConnectionManager, m *paho.Publish) *protocol.Op {
	totem, leaf, ok := protocol.ParseTopic(m.Topic)
	if !ok {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "topic", "message on malformed topic dropped", "topic_bytes", len(m.Topic)) // the topic may be anything
		return nil
	}
	switch leaf {
	case protocol.LeafOp:
		return h.decodeOp(m.Topic, m.Payload)
	case protocol.LeafState:
		st, err := protocol.DecodeState(m.Payload)
		if err != nil || st.Totem != totem {
			h.stats.Malformed.Add(1)
			h.limited(slog.LevelWarn, "state/"+totem, "state dropped", "totem", totem, "err", err)
			return nil
		}
		if st.Status == protocol.Online {
			h.publishPolicy(ctx, cm, totem)
			h.publishTechnicians(ctx, cm, totem)
		}
	}
	return nil
}

// decodeOp returns the operation an op message carries, or nil after
// dropping a malformed one.
func (h *Hub) decodeOp(topic string, payload []byte) *protocol.Op {
	totem, leaf, ok := protocol.ParseTopic(topic)
	if !ok || leaf != protocol.LeafOp {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "topic", "message on malformed topic dropped", "topic_bytes", len(topic))
		return nil
	}
	op, err := protocol.DecodeOp(payload)
	if err != nil {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "op/"+totem, "op dropped", "totem", totem, "err", err, "bytes", len(payload))
		return nil
	}
	if op.Totem != totem {
		h.stats.Malformed.Add(1)
		// The claimed id is the sender's text (a codice fiscale has a
		// totem id's syntax): its length only.
		h.limited(slog.LevelWarn, "claim/"+totem, "op for another totem dropped", "totem", totem, "claimed_bytes", len(op.Totem))
		return nil
	}
	return op
}

// apply applies the batch in one commit when the backend can, one by one
// otherwise.
func (h *Hub) apply(ctx context.Context, batch []pending) ([]cms.Outcome, error) {
	now := time.Now().UTC()
	ops := make([]cms.Op, len(batch))
	for i, p := range batch {
		o := p.op
		ops[i] = cms.Op{ID: o.ID, Totem: o.Totem, Seq: o.Seq, Kind: o.Kind, Payload: o.Payload,
			Created: o.Created, Expires: o.Expires, Received: now, Stamp: stampOf(o.Stamp),
			Counter: h.o.Fleet.ReissueCounter(o.Totem)}
	}
	h.stats.Batches.Add(1)
	if bb, ok := h.o.Backend.(cms.BatchBackend); ok {
		return bb.ApplyBatch(ctx, ops)
	}
	outs := make([]cms.Outcome, len(ops))
	for i, op := range ops {
		out, err := h.o.Backend.Apply(ctx, op)
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return outs, nil
}

// outcome fills res from an applied (or duplicate) operation's outcome.
func (h *Hub) outcome(op *protocol.Op, out cms.Outcome, res *protocol.Result) {
	fill(res, out)
	if out.Duplicate {
		h.stats.Duplicates.Add(1)
	} else {
		h.stats.Applied.Add(1)
		h.stats.kinds.add(op.Kind, out.Accepted)
	}
	h.log.Debug("op applied", "totem", op.Totem, "seq", op.Seq, "op_id", op.ID, "kind", op.Kind,
		"protocol", out.Protocol, "processing", res.Processing.Status, "duplicate", out.Duplicate)
}

// fill writes an applied (or duplicate) operation's outcome into res.
func fill(res *protocol.Result, out cms.Outcome) {
	res.Transport = protocol.Transport{Status: protocol.TransportReceived, Protocol: out.Protocol, At: out.At}
	res.Processing.Status = protocol.ProcessingAccepted
	if !out.Accepted {
		res.Processing.Status = protocol.ProcessingRejected
	}
	for _, r := range out.Rejects {
		res.Processing.Errors = append(res.Processing.Errors, protocol.Error{Code: r.Code, Message: r.Message})
	}
	res.Duplicate = out.Duplicate
	res.Data = out.Data
}

// outgoing is a result on its way to its totem.
type outgoing struct {
	totem string
	res   *protocol.Result
}

func (h *Hub) publishResult(ctx context.Context, cm *autopaho.ConnectionManager, totem string, res *protocol.Result) {
	payload, _ := protocol.Marshal(res)
	topic := protocol.Topic(totem, protocol.LeafResult)
	var err error
	if h.o.Local != nil {
		err = h.o.Local.Publish(topic, payload, 1)
	} else {
		_, err = cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	}
	if err != nil {
		// The totem will send the operation again and get the stored result.
		h.limited(slog.LevelWarn, "result/"+totem, "result not sent", "totem", totem, "seq", res.Seq, "err", err)
	}
}

func (h *Hub) publishPolicy(ctx context.Context, cm *autopaho.ConnectionManager, totem string) {
	h.mu.Lock()
	done := h.policySent[totem]
	h.policySent[totem] = true
	h.mu.Unlock()
	if done {
		return
	}
	p, err := h.o.Backend.Policy(ctx)
	if err != nil {
		h.log.Error("policy", "err", err)
		return
	}
	msg := protocol.Policy{V: protocol.Version, ID: p.ID}
	for _, c := range p.Consents {
		msg.Consents = append(msg.Consents, protocol.ConsentDef{Code: c.Code, Label: c.Label})
	}
	b, _ := protocol.Marshal(msg)
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafPolicy), QoS: 1, Retain: true, Payload: b}); err != nil {
		h.log.Warn("policy not sent", "totem", totem, "err", err)
		h.mu.Lock()
		delete(h.policySent, totem)
		h.mu.Unlock()
	}
}

// command answers a console's request on the hub's command topic:
// "report" (Reportistica) with args totem, operator, kind, outcome,
// from and to (YYYY-MM-DD, hub time) and by_day=true; "sendlog" (the
// elenco invii) with args totem, outcome, from, to, before and max;
// "sendlog_show" with arg n; "fleet" (the fleet registry) with args
// offline=true, alert=true and backlog=N.
func (h *Hub) command(p *paho.Publish) {
	if p.Properties == nil {
		return
	}
	rt := p.Properties.ResponseTopic
	console, ok := strings.CutPrefix(rt, protocol.HubRoot+"/reply/")
	if !ok || !protocol.ValidTotemID(console) {
		h.limited(slog.LevelWarn, "response_topic", "console command with a foreign response topic dropped", "response_topic_bytes", len(rt))
		return
	}
	reply := &protocol.Reply{V: protocol.Version, ID: "invalid"}
	var refused *protocol.Reply
	cmd, err := protocol.DecodeCommand(p.Payload)
	invalid := err != nil // err is reused below for the command's own failure
	if err == nil {
		refused = cmdsig.Authorize(h.o.Verifier, cmd, h.log.With("console", console))
	}
	switch {
	case err != nil:
		reply.Error = "invalid command"
	case refused != nil:
		reply = refused
	case cmd.Name == "report" || cmd.Name == "sendlog" || cmd.Name == "sendlog_show" || cmd.Name == "fleet":
		reply.ID = cmd.ID
		switch cmd.Name {
		case "report":
			reply.Data, err = h.report(cmd.Args)
		case "fleet":
			reply.Data, err = h.fleet(cmd.Args)
		case "sendlog":
			reply.Data, err = h.sendLog(cmd.Args)
		default:
			reply.Data, err = h.sendLogShow(cmd.Args)
		}
		if err != nil {
			reply.Error = err.Error()
		} else {
			reply.OK = true
		}
	case technicianCommands[cmd.Name] != nil:
		reply.ID = cmd.ID
		if reply.Data, err = technicianCommands[cmd.Name](h, cmd, console); err != nil {
			reply.Error = err.Error()
		} else {
			reply.OK = true
		}
	case accountCommands[cmd.Name] != nil:
		reply.ID = cmd.ID
		if reply.Data, err = accountCommands[cmd.Name](h, cmd, console); err != nil {
			reply.Error = err.Error()
		} else {
			reply.OK = true
		}
	case auditCommands[cmd.Name] != nil:
		reply.ID = cmd.ID
		if reply.Data, err = auditCommands[cmd.Name](h, cmd, console); err != nil {
			reply.Error = err.Error()
		} else {
			reply.OK = true
		}
	case strings.HasPrefix(cmd.Name, "job_") && h.o.Jobs != nil:
		reply.ID = cmd.ID
		if reply.Data, err = h.o.Jobs(console, cmd.Name, cmd.Args); err != nil {
			reply.Error = err.Error()
		} else {
			reply.OK = true
		}
	default:
		reply.ID, reply.Error = cmd.ID, "unknown command "+cmd.Name
	}
	switch {
	case invalid:
		h.stats.refuse(codeInvalid)
	case refused != nil:
		h.stats.refuse(refused.Code)
	case reply.OK:
		h.stats.CommandsOK.Add(1)
	default:
		h.stats.CommandsFailed.Add(1)
	}
	id := reply.ID
	if refused != nil && !cmdsig.Vouched(refused.Code) {
		id = fmt.Sprintf("<%d bytes>", len(id)) // anybody's text: see cmdsig.Vouched
	}
	h.log.Info("console command", "console", console, "id", id, "ok", reply.OK)
	if !invalid {
		h.auditCommand(console, cmd, reply, refused != nil)
	}
	b, _ := protocol.Marshal(reply)
	h.mu.Lock()
	cm := h.cm
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: rt, QoS: 1, Payload: b,
		Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}}); err != nil {
		h.log.Warn("console reply not sent", "err", err)
	}
}

func (h *Hub) report(args map[string]string) (json.RawMessage, error) {
	r, ok := h.o.Backend.(cms.Reporter)
	if !ok {
		return nil, errors.New("this CMS backend has no reports")
	}
	f := cms.ReportFilter{Totem: args["totem"], Operator: args["operator"], Kind: args["kind"],
		Outcome: args["outcome"], ByDay: args["by_day"] == "true"}
	for key, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := args[key]; v != "" {
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return nil, fmt.Errorf("%s: want YYYY-MM-DD", key)
			}
			*dst = t
		}
	}
	rows, err := r.Report(f)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []cms.ReportRow{}
	}
	return json.Marshal(rows)
}

// fleet answers the fleet command from the registry: at once, whatever
// the fleet's size.
func (h *Hub) fleet(args map[string]string) (json.RawMessage, error) {
	if h.o.Fleet == nil {
		return nil, errNoFleet
	}
	var f FleetFilter
	f.Offline = args["offline"] == "true"
	f.Alert = args["alert"] == "true"
	if v := args["backlog"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, errors.New("backlog: want a number of operations")
		}
		f.Backlog = n
	}
	max := 50
	if v := args["max"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return nil, errors.New("max: want 1 to 200")
		}
		max = n
	}
	// A page stays well under the 64 KiB a console decodes: entries are
	// bounded (fleet.go), and the console asks for the next page after
	// the last totem of this one.
	all := h.o.Fleet.List(f)
	after := args["after"]
	i := sort.Search(len(all), func(i int) bool { return all[i].Totem > after })
	page := FleetPage{At: time.Now().UTC(), SilentAfter: h.o.Fleet.SilentAfter().Seconds(), Total: len(all), Totems: all[i:]}
	if len(page.Totems) > max {
		page.Totems = page.Totems[:max]
		page.Next = page.Totems[max-1].Totem
	}
	h.credentialsExpiry(page.Totems) // fleet.go
	return json.Marshal(page)
}

// SendLogPage is the Data of the hub's sendlog command.
type SendLogPage struct {
	Rows []cms.Transmission `json:"rows"`
	Next uint64             `json:"next,omitempty"` // before= of the next page; 0: no more
}

func (h *Hub) sendLogger() (cms.SendLogger, error) {
	sl, ok := h.o.Backend.(cms.SendLogger)
	if !ok {
		return nil, errors.New("this CMS backend has no send log")
	}
	return sl, nil
}

func (h *Hub) sendLog(args map[string]string) (json.RawMessage, error) {
	sl, err := h.sendLogger()
	if err != nil {
		return nil, err
	}
	f := cms.SendLogFilter{Totem: args["totem"], Outcome: args["outcome"]}
	if f.Totem != "" && !protocol.ValidTotemID(f.Totem) {
		return nil, errors.New("totem: invalid id")
	}
	for key, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := args[key]; v != "" {
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return nil, fmt.Errorf("%s: want YYYY-MM-DD", key)
			}
			*dst = t
		}
	}
	if v := args["before"]; v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, errors.New("before: want a number")
		}
		f.Before = n
	}
	if v := args["max"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return nil, errors.New("max: want 1 to 500")
		}
		f.Max = n
	}
	rows, next, err := sl.SendLog(f)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []cms.Transmission{}
	}
	return json.Marshal(SendLogPage{Rows: rows, Next: next})
}

func (h *Hub) sendLogShow(args map[string]string) (json.RawMessage, error) {
	sl, err := h.sendLogger()
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(args["n"], 10, 64)
	if err != nil || n == 0 {
		return nil, errors.New("sendlog_show needs n=NUMBER")
	}
	t, err := sl.Transmission(n)
	if errors.Is(err, cms.ErrNotFound) {
		return nil, fmt.Errorf("send log entry %d not found", n)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// ledger answers a totem's resynchronisation request with the hub's
// record of its operations, on the totem's own ledger topic.
func (h *Hub) ledger(p *paho.Publish) {
	totem, _, _ := protocol.ParseTopic(p.Topic)
	req, err := protocol.DecodeLedgerRequest(p.Payload)
	if err != nil {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "sync/"+totem, "ledger request dropped", "totem", totem, "err", err)
		return
	}
	l := protocol.Ledger{V: protocol.Version, ID: req.ID, Totem: totem, Results: []protocol.Result{}}
	if req.Card != "" {
		l.CardState, l.Error = h.cardState(req.Card)
		h.publishLedger(totem, l)
		return
	}
	if sl, err := h.sendLogger(); err != nil {
		l.Error = err.Error()
	} else if last, entries, err := sl.Ledger(totem, req.From, req.Max); err != nil {
		h.log.Error("ledger", "totem", totem, "err", err)
		l.Error = "ledger unavailable"
	} else {
		l.LastSeq = last
		for _, e := range entries {
			res := protocol.Result{V: protocol.Version, OpID: e.OpID, Seq: e.Seq}
			fill(&res, e.Outcome)
			// What an online operation brought back (PIN halves…) served
			// its session: a resynchronisation needs the outcomes only.
			res.Duplicate, res.Data = false, nil
			l.Results = append(l.Results, res)
		}
	}
	h.limited(slog.LevelInfo, "ledger/"+totem, "ledger sent", "totem", totem, "from", req.From, "results", len(l.Results))
	h.publishLedger(totem, l)
}

// cardStore is the optional capability of a backend that answers a card's
// state (refcms.Store has it).
type cardStore interface {
	Card(serial string) (cms.Card, error)
}

// cardState is the CMS's state of the card with serial, for a flow that
// checks it before asking for everything (protocol.LedgerRequest.Card).
func (h *Hub) cardState(serial string) (state, errText string) {
	cs, ok := h.o.Backend.(cardStore)
	if !ok {
		return "", "this CMS backend does not answer card states"
	}
	c, err := cs.Card(serial)
	switch {
	case errors.Is(err, cms.ErrNotFound):
		return protocol.CardUnknown, ""
	case err != nil:
		h.log.Error("card state", "err", err)
		return "", "card state unavailable"
	}
	return string(c.State), ""
}

// publishLedger sends l on the totem's ledger topic.
func (h *Hub) publishLedger(totem string, l protocol.Ledger) {
	b, _ := protocol.Marshal(l)
	h.mu.Lock()
	cm := h.cm
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafLedger), QoS: 1, Payload: b}); err != nil {
		h.log.Warn("ledger not sent", "totem", totem, "err", err)
	}
}
