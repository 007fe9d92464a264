package uplink

import (
	"bytes"
	"io"
	"sync"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/autopaho/queue"
)

// The link has two lanes. The backlog lane carries operations: a token
// bucket paces them, at most a window of them wait for their result, and
// one goroutine (autopaho's queue manager) writes them in sequence order
// without waiting for each PUBACK. The priority lane is everything else
// (presence, telemetry, events, command replies): published directly, it
// never queues behind the backlog, and the window leaves it a reserved
// share of the broker's receive maximum.

// Clock is the time source of the token bucket and of the resend timer's
// judgement (backlog.overdue): the module's one clock interface, which
// hal.Clock is too, so hal's test clocks fit it.
type Clock = clock.Clock

// Defaults of the backlog lane's token bucket: well above what a drain
// reaches end to end, so they bound a burst without slowing a drain.
const (
	DefaultRate  = 10000 // operations per second
	DefaultBurst = 1000
)

// bucket is a token bucket: up to burst tokens, refilled at rate per
// second. It is not safe for concurrent use (the session goroutine owns it).
type bucket struct {
	rate   float64 // tokens per second; <= 0: no limit
	burst  float64
	tokens float64
	last   time.Time
	clock  Clock
}

func newBucket(rate float64, burst int, clock Clock) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: clock.Now(), clock: clock}
}

// take grants up to n tokens. When it grants none it says how long until
// one is available.
func (b *bucket) take(n int) (int, time.Duration) {
	if b.rate <= 0 || n <= 0 {
		return max(n, 0), 0
	}
	now := b.clock.Now()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
	}
	b.last = now
	got := min(n, int(b.tokens))
	if got <= 0 {
		return 0, max(time.Duration((1-b.tokens)/b.rate*float64(time.Second)), time.Millisecond)
	}
	b.tokens -= float64(got)
	return got, 0
}

// give returns tokens taken but not used.
func (b *bucket) give(n int) {
	if b.rate > 0 && n > 0 {
		b.tokens = min(b.burst, b.tokens+float64(n))
	}
}

// opWindow is how many operations may wait for their result at once: the
// configured window, within the broker's receive maximum less the share
// reserved to the priority lane (an eighth, at least two), so that
// operations never hold every packet id a PUBLISH needs.
func opWindow(window int, receiveMax uint16) int {
	rm := int(receiveMax)
	if rm == 0 {
		rm = 65535 // MQTT 5: absent means 65 535
	}
	return max(1, min(window, rm-max(2, rm/8)))
}

// backoff is the reconnect delay: a random duration between lo and a
// ceiling that starts at twice lo and doubles with each failed attempt up
// to hi (autopaho's jittered exponential backoff, capped at hi).
func backoff(lo, hi time.Duration) autopaho.Backoff {
	lo = max(lo, time.Millisecond)
	hi = max(hi, 2*lo+time.Millisecond)
	return autopaho.NewExponentialBackoff(lo, hi, 2*lo, 2)
}

// opQueue is the backlog lane's transmit queue, autopaho's
// ClientConfig.Queue: memory only (the outbox is the durable store) and
// emptied when a connection ends, since everything not answered is sent
// again, in order, on the next one.
type opQueue struct {
	mu      sync.Mutex
	items   []queued
	next    uint64
	waiting []chan struct{}
}

type queued struct {
	id uint64
	b  []byte
}

var _ queue.Queue = (*opQueue)(nil)

// Wait returns a channel closed once the queue holds something.
func (q *opQueue) Wait() chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := make(chan struct{})
	if len(q.items) > 0 {
		close(c)
		return c
	}
	q.waiting = append(q.waiting, c)
	return c
}

// Enqueue adds a serialised PUBLISH. A *bytes.Buffer (what
// PublishViaQueue hands over, then drops) is taken without a copy.
func (q *opQueue) Enqueue(r io.Reader) error {
	var b []byte
	if bb, ok := r.(*bytes.Buffer); ok {
		b = bb.Bytes()
	} else {
		var err error
		if b, err = io.ReadAll(r); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next++
	q.items = append(q.items, queued{id: q.next, b: b})
	for _, c := range q.waiting {
		close(c)
	}
	q.waiting = q.waiting[:0]
	return nil
}

// Peek returns the oldest entry without removing it.
func (q *opQueue) Peek() (queue.Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, queue.ErrEmpty
	}
	return &opEntry{q: q, it: q.items[0]}, nil
}

// reset drops everything queued.
func (q *opQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.items)
	q.items = q.items[:0]
}

// remove drops the entry with id if it is still the oldest (a reset may
// have dropped it while it was being sent).
func (q *opQueue) remove(id uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 && q.items[0].id == id {
		q.items[0] = queued{}
		q.items = q.items[1:]
	}
	return nil
}

type opEntry struct {
	q  *opQueue
	it queued
}

func (e *opEntry) Reader() (io.Reader, error) { return bytes.NewReader(e.it.b), nil }
func (e *opEntry) Leave() error               { return nil }
func (e *opEntry) Remove() error              { return e.q.remove(e.it.id) }
func (e *opEntry) Quarantine() error          { return e.q.remove(e.it.id) }
