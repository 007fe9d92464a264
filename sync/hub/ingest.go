package hub

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// ingest is the operations' side of the hub: it takes them from the
// broker (receive, or local on an embedded broker) through the fair queue
// to the backend in batches, and answers each totem on its result topic;
// on the way it sends a totem coming online the consent policy.
type ingest struct {
	h     *Hub
	work  chan *paho.Publish   // from receive to intake
	queue atomic.Pointer[fair] // the worker's, for Queued
}

// local takes an operation from the embedded broker (Options.Local) into
// the queue, on its totem's connection goroutine: when the queue is full
// it waits for room, and the broker reads nothing more from that totem
// meanwhile. What the broker acknowledged to the totem is either queued
// or, when the hub stops, left to the totem to send again (no result).
func (in *ingest) local(ctx context.Context, q *fair, topic string, payload []byte) {
	h := in.h
	op := in.decodeOp(topic, payload)
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
func (in *ingest) worker(ctx context.Context, cm *autopaho.ConnectionManager, q *fair) {
	h := in.h
	results := make(chan outgoing, maxBatch)
	var pubs sync.WaitGroup
	for range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for r := range results {
				in.publishResult(ctx, cm, r.totem, r.res)
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
		in.intake(ctx, cm, q)
	}()
	held := make(map[heldKey]pending)
	var pause backendPause // storecheck.go
	for in.wait(ctx, q, len(held) > 0) {
		batch := in.collect(held, q)
		if len(batch) == 0 {
			continue
		}
		began := time.Now()
		outs, err := in.apply(ctx, batch)
		h.stats.batch.observe(time.Since(began))
		var auditErr error // the batch's audit entries not recorded: their totems send them again
		if err == nil {
			auditErr = in.audit(batch, outs)
		}
		for _, a := range in.answers(batch, outs, err, auditErr, held) {
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

// wait waits for operations in q, or for the next try of those held when
// there are (held); it reports false when ctx is done.
func (*ingest) wait(ctx context.Context, q *fair, held bool) bool {
	if q.len() > 0 {
		return true
	}
	if !held {
		select {
		case <-ctx.Done():
			return false
		case <-q.ready:
			return true
		}
	}
	return sleep(ctx, gapPause, q.ready)
}

// audit records the batch's audit entries in the central audit; the
// error says they were not.
func (in *ingest) audit(batch []pending, outs []cms.Outcome) error {
	h := in.h
	var entries []*protocol.Op
	for i, p := range batch {
		if isAudit(p.op, outs[i]) {
			entries = append(entries, p.op)
		}
	}
	err := h.auditOps(entries)
	if err != nil {
		h.limited(slog.LevelError, "audit", "audit entries not recorded", "n", len(entries), "err", err)
	}
	return err
}

// answers makes the results of an applied batch (err: the backend could
// not decide; auditErr: its audit entries were not recorded), holding in
// held the operations whose predecessor may still come, and records the
// sequence gaps refused in the send log before they are answered.
func (in *ingest) answers(batch []pending, outs []cms.Outcome, err, auditErr error, held map[heldKey]pending) []outgoing {
	h := in.h
	var refused []cms.Transmission // for the send log
	answers := make([]outgoing, 0, len(batch))
	for i, p := range batch {
		res := &protocol.Result{V: protocol.Version, OpID: p.op.ID, Seq: p.op.Seq}
		switch {
		case err != nil:
			// The backend could not decide: say so; the totem sends it again.
			h.stats.Unavailable.Add(1)
			h.limited(slog.LevelError, "apply", "apply failed", "totem", p.op.Totem, "seq", p.op.Seq, "err", err)
			refuse(res, time.Now().UTC())
		case outs[i].OutOfOrder && p.op.Seq-outs[i].Expect < gapWindow && time.Since(p.since) < p.hold():
			held[keyOf(p.op)] = p
			continue
		case outs[i].OutOfOrder:
			h.stats.Gaps.Add(1)
			h.limited(slog.LevelInfo, "gap/"+p.op.Totem, "sequence gap", "totem", p.op.Totem, "seq", p.op.Seq, "expect", outs[i].Expect)
			refuse(res, outs[i].At)
			res.Expect = outs[i].Expect
			refused = append(refused, cms.Transmission{At: outs[i].At, Totem: p.op.Totem, Seq: p.op.Seq,
				OpID: p.op.ID, Kind: p.op.Kind, Stamp: p.op.Stamp, Expect: outs[i].Expect})
		case auditErr != nil && isAudit(p.op, outs[i]):
			// Not in the audit: the totem is told to send it again, and
			// the CMS's stored outcome (a duplicate) leads here again.
			refuse(res, time.Now().UTC())
		default:
			in.outcome(p.op, outs[i], res)
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
	return answers
}

// refuse makes res a transport refusal at at: the totem sends the
// operation again.
func refuse(res *protocol.Result, at time.Time) {
	res.Transport = protocol.Transport{Status: protocol.TransportRefused, At: at}
	res.Processing = protocol.Processing{Status: protocol.ProcessingPending}
}

// intake decodes what receive hands over into the fair queue as fast as
// it comes (presence messages are handled on the way), so that receive
// only waits when the queue is full, not while a batch commits.
func (in *ingest) intake(ctx context.Context, cm *autopaho.ConnectionManager, q *fair) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-in.work:
			if op := in.decode(ctx, cm, m); op != nil {
				if queued, _ := q.push(ctx, pending{op: op, arrived: time.Now()}); !queued {
					return
				}
			}
		}
	}
}

// collect makes a batch of the held operations and a fair share of the
// queue, sorted by totem and sequence.
func (*ingest) collect(held map[heldKey]pending, q *fair) []pending {
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
func (in *ingest) decode(ctx context.Context, cm *autopaho.ConnectionManager, m *paho.Publish) *protocol.Op {
	h := in.h
	totem, leaf, ok := protocol.ParseTopic(m.Topic)
	if !ok {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "topic", "message on malformed topic dropped", "topic_bytes", len(m.Topic)) // the topic may be anything
		return nil
	}
	switch leaf {
	case protocol.LeafOp:
		return in.decodeOp(m.Topic, m.Payload)
	case protocol.LeafState:
		st, err := protocol.DecodeState(m.Payload)
		if err != nil || st.Totem != totem {
			h.stats.Malformed.Add(1)
			h.limited(slog.LevelWarn, "state/"+totem, "state dropped", "totem", totem, "err", err)
			return nil
		}
		if st.Status == protocol.Online && !h.notOwner(totem) {
			in.publishPolicy(ctx, cm, totem)
			h.publishTechnicians(ctx, cm, totem)
			if o, ok := h.o.Accounts.(UserObserver); ok {
				user := st.User
				if user == "" {
					user = totem
				}
				o.SeenAs(totem, user)
			}
		}
	}
	return nil
}

// decodeOp returns the operation an op message carries, or nil after
// dropping a malformed one.
func (in *ingest) decodeOp(topic string, payload []byte) *protocol.Op {
	h := in.h
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
func (in *ingest) apply(ctx context.Context, batch []pending) ([]cms.Outcome, error) {
	h := in.h
	now := time.Now().UTC()
	ops := make([]cms.Op, len(batch))
	for i, p := range batch {
		o := p.op
		ops[i] = cms.Op{ID: o.ID, Totem: o.Totem, Seq: o.Seq, Kind: o.Kind, Payload: o.Payload,
			Created: o.Created, Expires: o.Expires, Received: now, Stamp: o.Stamp,
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
func (in *ingest) outcome(op *protocol.Op, out cms.Outcome, res *protocol.Result) {
	h := in.h
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

func (in *ingest) publishResult(ctx context.Context, cm *autopaho.ConnectionManager, totem string, res *protocol.Result) {
	h := in.h
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

func (in *ingest) publishPolicy(ctx context.Context, cm *autopaho.ConnectionManager, totem string) {
	h := in.h
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
	b, _ := protocol.Marshal(protocol.Policy{V: protocol.Version, Policy: p})
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafPolicy), QoS: 1, Retain: true, Payload: b}); err != nil {
		h.log.Warn("policy not sent", "totem", totem, "err", err)
		h.mu.Lock()
		delete(h.policySent, totem)
		h.mu.Unlock()
	}
}
