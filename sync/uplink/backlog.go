package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// backlog is the backlog lane's sending side: it drains the outbox in
// sequence order within the in-flight window and the token bucket, and
// keeps the book of what was sent on this connection and waits for its
// result, with the rewind a refusal, a requeue or a void asks for.
type backlog struct {
	o      *Options
	log    *slog.Logger
	bucket *bucket // paces the lane; session goroutine only

	mu sync.Mutex
	// inflight is every op sent on this connection and not yet recorded
	// done: op id → when it was last sent (o.Clock), and whether its
	// final result has come and waits for the recorder. The drain sends
	// only what is not in it: an op leaves it to be sent again (overdue,
	// refused, rewindTo). An answered op is never sent again by the
	// timer: the hub has answered, and a resend would only bring its
	// result again, for the same busy recorder (congestion collapse on a
	// slow disk). It still holds its place in the window until it is
	// recorded (the recorder's backlog stops the drain), and it loses the
	// mark if its result is dropped or not recorded, so it is sent again.
	inflight map[string]sent
	rewind   uint64    // when non-zero, resend from this seq
	heard    time.Time // when a final result for an op in flight last came (o.Clock)
	heardSeq uint64    // the highest seq of those results on this connection
	window   int       // Window within this connection's receive maximum
}

type sent struct {
	seq      uint64
	at       time.Time
	answered bool // its final result is queued for the recorder
}

func newBacklog(o *Options, log *slog.Logger) *backlog {
	return &backlog{o: o, log: log, bucket: newBucket(o.Rate, o.Burst, o.Clock),
		inflight: make(map[string]sent), window: o.Window}
}

// reset starts a new connection's book: everything pending is sent again,
// within window.
func (l *backlog) reset(window int) {
	l.mu.Lock()
	l.inflight = make(map[string]sent)
	l.rewind = 0
	l.heard, l.heardSeq = time.Time{}, 0
	l.window = window
	l.mu.Unlock()
}

// rewindTo makes the drain start again from seq at the latest, sending
// again what it sent from there and has no result for.
func (l *backlog) rewindTo(seq uint64) {
	l.mu.Lock()
	if l.rewind == 0 || seq < l.rewind {
		l.rewind = seq
	}
	for id, s := range l.inflight {
		if s.seq >= seq && !s.answered {
			delete(l.inflight, id)
		}
	}
	l.mu.Unlock()
}

// refused forgets opID, which the hub refused, and, when from > 0, rewinds
// to from and forgets everything sent from there: it is sent again.
func (l *backlog) refused(opID string, from uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.inflight, opID)
	if from > 0 && (l.rewind == 0 || from < l.rewind) {
		l.rewind = from
		for id, s := range l.inflight {
			if s.seq >= from {
				delete(l.inflight, id)
			}
		}
	}
}

// answered marks opID, in flight, as answered: its final result is to be
// queued for the recorder. It reports whether opID is in flight, and
// whether it was answered already (its result is queued: this one, a
// duplicate, adds nothing). A result for an op in flight is the hub's
// progress: the resend timer starts again (overdue).
func (l *backlog) answered(opID string) (inflight, before bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.inflight[opID]
	if !ok {
		return false, false
	}
	l.heard = l.o.Clock.Now()
	l.heardSeq = max(l.heardSeq, s.seq)
	if s.answered {
		return true, true
	}
	s.answered = true
	l.inflight[opID] = s
	return true, false
}

// unanswered takes back answered's mark: the result was dropped, or not
// recorded as final. The op counts as sent when it was, so the timer
// sends it again (at once if it has waited ResendAfter already).
func (l *backlog) unanswered(opID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.inflight[opID]; ok && s.answered {
		s.answered = false
		l.inflight[opID] = s
	}
}

// inFlight reports whether opID was sent and waits for its result, or
// for the recorder.
func (l *backlog) inFlight(opID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.inflight[opID]
	return ok
}

// done forgets opID, whose result was recorded.
func (l *backlog) done(opID string) {
	l.mu.Lock()
	delete(l.inflight, opID)
	l.mu.Unlock()
}

// drain queues pending operations with seq > after on the backlog lane,
// in order, while the window has room and the bucket has tokens. It
// returns the last seq queued and, when the bucket ran dry, how long until
// it has a token again. The attempts of each round are recorded in one
// outbox write.
func (l *backlog) drain(ctx context.Context, cm *autopaho.ConnectionManager, after uint64) (uint64, time.Duration, error) {
	for {
		l.mu.Lock()
		if l.rewind > 0 {
			after = l.rewind - 1
			l.rewind = 0
		}
		room := l.window - len(l.inflight)
		l.mu.Unlock()
		if room <= 0 {
			return after, 0, nil
		}
		n, wait := l.bucket.take(room)
		if n == 0 {
			return after, wait, nil
		}
		entries, err := l.o.Outbox.Pending(after, n)
		l.bucket.give(n - len(entries))
		if err != nil {
			return after, 0, err
		}
		if len(entries) == 0 {
			return after, 0, nil
		}
		at, sentAt := time.Now(), l.o.Clock.Now() // the outbox's record, overdue's stamp
		ids := make([]string, 0, len(entries))
		skipped := 0
		for _, e := range entries {
			if l.inFlight(e.ID) {
				// Answered and waiting for the recorder, or waiting its
				// turn at the hub: not sent again.
				skipped++
				after = e.Seq
				continue
			}
			if err = l.send(ctx, cm, e, sentAt); err != nil {
				l.bucket.give(len(entries) - len(ids) - skipped)
				break
			}
			ids = append(ids, e.ID)
			after = e.Seq
		}
		l.bucket.give(skipped)
		if len(ids) > 0 {
			// The attempts are bookkeeping: a full outbox that cannot
			// record them must still drain, or it never gets room back.
			if _, merr := l.o.Outbox.MarkSentAll(ids, at); merr != nil {
				l.log.Warn("sends not recorded", "n", len(ids), "err", merr)
			}
		}
		if err != nil {
			return after, 0, err
		}
	}
}

// send queues one operation on the backlog lane; the caller records the
// attempt.
func (l *backlog) send(ctx context.Context, cm *autopaho.ConnectionManager, e outbox.Entry, now time.Time) error {
	op := protocol.Op{V: protocol.Version, ID: e.ID, Totem: l.o.Totem, Seq: e.Seq, Kind: e.Kind,
		Payload: e.Payload, Created: e.Created, Expires: e.Expires, Stamp: e.Stamp}
	b, err := protocol.Marshal(op)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.inflight[e.ID] = sent{seq: e.Seq, at: now}
	l.mu.Unlock()
	if err := cm.PublishViaQueue(ctx, &autopaho.QueuePublish{Publish: &paho.Publish{Topic: protocol.Topic(l.o.Totem, protocol.LeafOp), QoS: 1, Payload: b}}); err != nil {
		l.done(e.ID)
		return fmt.Errorf("publish op %d: %w", e.Seq, err)
	}
	l.log.Debug("op sent", "seq", e.Seq, "op_id", e.ID, "kind", e.Kind, "attempt", e.Attempts+1)
	return nil
}

// resendRound is the resend timer's round: it returns the drain's cursor
// moved back before the oldest op overdue, or else before one stranded
// behind it, or after unchanged.
func (l *backlog) resendRound(after uint64) uint64 {
	if seq := l.overdue(); seq > 0 {
		after = seq - 1
	} else if seq := l.stranded(after); seq > 0 {
		l.log.Info("pending op behind the cursor, sending again", "seq", seq)
		after = seq - 1
	}
	if l.o.resendCheck != nil {
		l.o.resendCheck()
	}
	return after
}

// stranded returns the oldest pending seq when it is at or below after
// (already sent) yet neither in flight nor answered: whatever lost track
// of it, it is sent again rather than left to block the hub's in-order
// apply. It returns 0 otherwise.
func (l *backlog) stranded(after uint64) uint64 {
	q, err := l.o.Outbox.Stats()
	if err != nil || q.Depth == 0 || q.OldestSeq == 0 || q.OldestSeq > after {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.inflight {
		if s.seq == q.OldestSeq {
			return 0
		}
	}
	return q.OldestSeq
}

// overdue returns the lowest seq that has waited too long for its result,
// forgetting the overdue ops so the drain sends them again, in order; an
// op whose result has come (answered) is never overdue. The wait is
// measured on o.Clock, the clock the sends were stamped with. The hub
// applies a totem's ops in order: an op above every op answered so far
// may just wait its turn there while the hub works through the window,
// and is overdue only once the hub has also been silent for ResendAfter
// (as TCP restarts its retransmission timer on each new ACK); an op below
// one answered was passed by, and is overdue ResendAfter after its send.
func (l *backlog) overdue() uint64 {
	now := l.o.Clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	quiet := now.Sub(l.heard) >= l.o.ResendAfter
	late := func(s sent) bool {
		return !s.answered && now.Sub(s.at) >= l.o.ResendAfter && (quiet || s.seq < l.heardSeq)
	}
	var low uint64
	for id, s := range l.inflight {
		if late(s) {
			if low == 0 || s.seq < low {
				low = s.seq
			}
			delete(l.inflight, id)
		}
	}
	return low
}
