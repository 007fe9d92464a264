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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/internal/lograte"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
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
	// Queue bounds the operations waiting to be applied. When it is full
	// new ones are dropped with a warning: the totem sends them again when
	// no result comes.
	Queue int // default 4096
}

// How long an out-of-order operation waits for its predecessor, which
// another instance may be applying, before the totem is asked to resend.
const (
	gapWindow   = 64 // only for gaps this small: larger ones are real losses
	reorderWait = 100 * time.Millisecond
	gapPause    = 5 * time.Millisecond // how often held operations are tried again
	maxBatch    = 256                  // operations applied in one commit at most
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
	enr       enrollState     // enroll.go
	rotations atomic.Int64    // rotate.go

	mu         sync.Mutex
	cm         *autopaho.ConnectionManager
	policySent map[string]bool // totems sent the policy on this connection
}

// Stats counts what the hub did.
type Stats struct {
	Applied    atomic.Int64 // operations applied (accepted or rejected)
	Duplicates atomic.Int64 // operations seen again, stored result re-sent
	Gaps       atomic.Int64 // operations refused for a sequence gap
	Malformed  atomic.Int64 // payloads refused
	Dropped    atomic.Int64 // operations dropped, queue full
	Batches    atomic.Int64 // batches handed to the backend (one commit each for a BatchBackend)
	// Requests dropped, not logged: console commands while cmdPool are
	// answered, sync requests over a totem's rate or while syncPool are.
	CommandsDropped atomic.Int64
	SyncDropped     atomic.Int64
}

// New returns a hub; it does nothing until Run.
func New(o Options) *Hub {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Queue == 0 {
		o.Queue = 4096
	}
	h := &Hub{o: o, log: o.Logger, work: make(chan *paho.Publish, o.Queue), policySent: make(map[string]bool)}
	h.cmdPool = pool{slots: make(chan struct{}, cmdPool), set: &h.cmds}
	h.syncPool = pool{slots: make(chan struct{}, syncPool), set: &h.cmds}
	h.enr.pool, h.enr.limit = pool{slots: make(chan struct{}, enrollPool), set: &h.cmds}, rate.NewLimiter(rate.Every(enrollEvery), enrollBurst)
	return h
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Run connects and serves until ctx is done.
func (h *Hub) Run(ctx context.Context) error {
	srv, err := url.Parse(h.o.URL)
	if err != nil {
		return fmt.Errorf("hub: broker url: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fatal atomic.Pointer[error]
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{srv},
		TlsCfg:                        h.o.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(200*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectUsername:               h.o.Username,
		ConnectPassword:               []byte(h.o.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			h.mu.Lock()
			h.policySent = make(map[string]bool)
			h.mu.Unlock()
			// Subscribing waits for the SUBACK: not on paho's goroutine.
			h.cmds.Go(func() {
				subs := []paho.SubscribeOptions{
					{Topic: protocol.SharedOpFilter, QoS: 1},
					{Topic: protocol.Root + "/+/" + protocol.LeafState, QoS: 1},
					{Topic: protocol.SharedHubCmdTopic, QoS: 1},
					{Topic: protocol.SharedSyncFilter, QoS: 1},
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
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) { h.receive(pr.Packet); return true, nil },
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
		h.worker(ctx, cm)
	}()
	<-ctx.Done()
	wg.Wait()
	h.cmds.Close()
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	cm.Disconnect(dctx)
	dcancel()
	<-cm.Done()
	if err := fatal.Load(); err != nil {
		return *err
	}
	return nil
}

// AwaitConnection waits until the hub is connected.
func (h *Hub) AwaitConnection(ctx context.Context) error {
	for {
		h.mu.Lock()
		cm := h.cm
		h.mu.Unlock()
		if cm != nil {
			return cm.AwaitConnection(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// receive runs on paho's delivery goroutine: it only hands the message to
// the worker (or a console command or sync request to its pool), never
// waits.
func (h *Hub) receive(p *paho.Publish) {
	if h.credentialRequest(p) { // rotate.go
		return
	}
	if totem, leaf, _ := protocol.ParseTopic(p.Topic); h.dispatchRequest(p, totem, leaf) {
		return
	}
	select {
	case h.work <- p:
	default:
		h.stats.Dropped.Add(1)
		h.limited(slog.LevelWarn, "queue_full", "ingest queue full, message dropped", "topic_bytes", len(p.Topic))
	}
}

// heldKey names a held operation: ids are unique per totem only, and a
// totem reusing another's id must not stand in for it.
type heldKey struct{ totem, id string }

func keyOf(op *protocol.Op) heldKey { return heldKey{op.Totem, op.ID} }

// pending is an operation on its way through the worker.
type pending struct {
	op    *protocol.Op
	since time.Time // first seen: bounds how long a gap is waited for
}

// worker applies what receive hands over, in batches: each batch is sorted
// by totem and sequence and applied in one commit when the backend can;
// an operation whose predecessor has not arrived yet is held for a short
// reorder window (another instance, or a concurrent send, may bring it)
// before the totem is told to send again. Results go out through a small
// pool of publishers so a slow PUBACK never stalls the ingest.
func (h *Hub) worker(ctx context.Context, cm *autopaho.ConnectionManager) {
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
	held := make(map[heldKey]pending)
	for {
		var first *paho.Publish
		if len(held) == 0 {
			select {
			case <-ctx.Done():
				return
			case first = <-h.work:
			}
		} else {
			t := time.NewTimer(gapPause)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case first = <-h.work:
			case <-t.C:
			}
			t.Stop()
		}
		batch := h.collect(ctx, cm, first, held)
		if len(batch) == 0 {
			continue
		}
		outs, err := h.apply(ctx, batch)
		var refused []cms.Transmission // for the send log
		answers := make([]outgoing, 0, len(batch))
		for i, p := range batch {
			res := &protocol.Result{V: protocol.Version, OpID: p.op.ID, Seq: p.op.Seq}
			switch {
			case err != nil:
				// The backend could not decide: say so; the totem sends it again.
				h.limited(slog.LevelError, "apply", "apply failed", "totem", p.op.Totem, "seq", p.op.Seq, "err", err)
				res.Transport = protocol.Transport{Status: protocol.TransportRefused, At: time.Now().UTC()}
				res.Processing = protocol.Processing{Status: protocol.ProcessingPending}
			case outs[i].OutOfOrder && p.op.Seq-outs[i].Expect < gapWindow && time.Since(p.since) < reorderWait:
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
			default:
				h.outcome(p.op, outs[i], res)
			}
			delete(held, keyOf(p.op))
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
	}
}

// stampOf converts a totem's clock stamp for the backend.
func stampOf(s *protocol.Stamp) *cms.Stamp {
	if s == nil {
		return nil
	}
	return &cms.Stamp{Boot: s.Boot, Mono: s.Mono, Wall: s.Wall, Synced: s.Synced}
}

// collect takes first and whatever else is already waiting (up to a batch),
// decodes the operations, adds the held ones and sorts the lot by totem and
// sequence. Presence messages are handled on the way.
func (h *Hub) collect(ctx context.Context, cm *autopaho.ConnectionManager, first *paho.Publish, held map[heldKey]pending) []pending {
	now := time.Now()
	var batch []pending
	for _, p := range held {
		batch = append(batch, p)
	}
	// Every copy of an operation gets its answer (the backend says
	// "duplicate"), except copies of one already held: it is answered when
	// it leaves the hold.
	take := func(m *paho.Publish) {
		if op := h.decode(ctx, cm, m); op != nil {
			if _, ok := held[keyOf(op)]; !ok {
				batch = append(batch, pending{op: op, since: now})
			}
		}
	}
	if first != nil {
		take(first)
	}
	for len(batch) < maxBatch {
		select {
		case m := <-h.work:
			take(m)
			continue
		default:
		}
		break
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
	case protocol.LeafState:
		st, err := protocol.DecodeState(m.Payload)
		if err != nil || st.Totem != totem {
			h.stats.Malformed.Add(1)
			h.limited(slog.LevelWarn, "state/"+totem, "state dropped", "totem", totem, "err", err)
			return nil
		}
		if st.Status == protocol.Online {
			h.publishPolicy(ctx, cm, totem)
		}
		return nil
	case protocol.LeafOp:
	default:
		return nil
	}
	op, err := protocol.DecodeOp(m.Payload)
	if err != nil {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "op/"+totem, "op dropped", "totem", totem, "err", err, "bytes", len(m.Payload))
		return nil
	}
	if op.Totem != totem {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "claim/"+totem, "op for another totem dropped", "totem", totem, "claimed", op.Totem)
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
			Created: o.Created, Expires: o.Expires, Received: now, Stamp: stampOf(o.Stamp)}
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
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafResult), QoS: 1, Payload: payload}); err != nil {
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
// "sendlog_show" with arg n.
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
	if err == nil {
		refused = cmdsig.Authorize(h.o.Verifier, cmd, h.log.With("console", console))
	}
	switch {
	case err != nil:
		reply.Error = "invalid command"
	case refused != nil:
		reply = refused
	case cmd.Name == "report" || cmd.Name == "sendlog" || cmd.Name == "sendlog_show":
		reply.ID = cmd.ID
		switch cmd.Name {
		case "report":
			reply.Data, err = h.report(cmd.Args)
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
	case accountCommands[cmd.Name] != nil:
		reply.ID = cmd.ID
		if reply.Data, err = accountCommands[cmd.Name](h, cmd, console); err != nil {
			reply.Error = err.Error()
		} else {
			reply.OK = true
		}
	default:
		reply.ID, reply.Error = cmd.ID, "unknown command "+cmd.Name
	}
	h.log.Info("console command", "console", console, "id", reply.ID, "ok", reply.OK)
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
