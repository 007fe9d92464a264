package uplink

import (
	"context"
	"fmt"
	"github.com/aslcns/totem/hal/haltest"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// slowRecorderHub is a hub that answers every operation at once, except
// the first delivery of seq silent; it records the arrival order on
// paho's goroutine.
type slowRecorderHub struct {
	mu     sync.Mutex
	order  []uint64
	seen   map[uint64]int
	silent chan struct{} // closed when the hub ignored seq silent
}

func newSlowRecorderHub(t *testing.T, ctx context.Context, r *rig, silent uint64) *slowRecorderHub {
	h := &slowRecorderHub{seen: map[uint64]int{}, silent: make(chan struct{})}
	hub := dial(t, ctx, r.srv.URL(), r.hub, func(cm *autopaho.ConnectionManager, p *paho.Publish) {
		op, err := protocol.DecodeOp(p.Payload)
		if err != nil {
			t.Errorf("hub got a bad op: %v", err)
			return
		}
		h.mu.Lock()
		h.seen[op.Seq]++
		n := h.seen[op.Seq]
		h.mu.Unlock()
		if op.Seq == silent && n == 1 {
			close(h.silent)
			return
		}
		res := protocol.Result{V: 1, OpID: op.ID, Seq: op.Seq, Duplicate: n > 1,
			Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: fmt.Sprint("P", op.Seq)},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}
		b, _ := protocol.Marshal(res)
		cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafResult), QoS: 1, Payload: b})
	})
	t.Cleanup(func() { hub.Disconnect(context.Background()) })
	hub.AddOnPublishReceived(func(pr autopaho.PublishReceived) (bool, error) {
		if op, err := protocol.DecodeOp(pr.Packet.Payload); err == nil {
			h.mu.Lock()
			h.order = append(h.order, op.Seq)
			h.mu.Unlock()
		}
		return true, nil
	})
	if _, err := hub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.SharedOpFilter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return h
}

// arrivals returns how many times seq arrived, and the arrival order.
func (h *slowRecorderHub) arrivals(seq uint64) (int, []uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.order {
		if s == seq {
			n++
		}
	}
	return n, append([]uint64(nil), h.order...)
}

// The hub has answered, but the recorder is behind (a slow commit on a
// loaded disk): the operations whose results wait for it are not sent
// again when the resend timer fires — a resend would only bring their
// results again, for the same busy recorder, and fill its queue until
// fresh results are dropped (TestDiskQuota's "result dropped, recorder
// busy" storm). An operation the hub never answered is sent again.
func TestAnsweredOpsWaitForTheRecorder(t *testing.T) {
	const n = 8
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range n {
		if _, err := r.box.Enqueue("consent", []byte(`{}`), time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	h := newSlowRecorderHub(t, ctx, r, n) // the last op goes unanswered once
	rec := newHeldRecorder()
	clk := newFakeClock()
	u, _ := r.run(t, ctx, Options{ResendAfter: resendAfter2, Clock: clk, beforeRecord: rec.before})
	defer rec.free()

	// Every operation was sent once, the hub answered all but the last,
	// and their results wait for the recorder (in its hand or queued).
	select {
	case <-h.silent:
	case <-ctx.Done():
		t.Fatal("the last op never reached the hub")
	}
	select {
	case <-rec.held:
	case <-ctx.Done():
		t.Fatal("no result reached the recorder")
	}
	for {
		waiting := rec.inHand() + len(u.results)
		if waiting == n-1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d results wait for the recorder, want %d", waiting, n-1)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Every operation has waited ResendAfter: only the unanswered one is
	// sent again.
	clk.Advance(resendAfter2)
	for {
		if k, _ := h.arrivals(n); k == 2 {
			break
		}
		if ctx.Err() != nil {
			_, order := h.arrivals(n)
			t.Fatalf("seq %d never sent again (hub saw %v)", n, order)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, order := h.arrivals(n); len(order) != n+1 {
		t.Fatalf("hub saw %v: ops answered and waiting for the recorder were sent again", order)
	}

	// The recorder catches up: everything is recorded, each op sent once
	// but the one the hub ignored.
	rec.free()
	for r.depth(t) > 0 {
		if ctx.Err() != nil {
			t.Fatalf("backlog stuck at %d", r.depth(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for seq := uint64(1); seq <= n; seq++ {
		want := 1
		if seq == n {
			want = 2
		}
		if k, order := h.arrivals(seq); k != want {
			t.Fatalf("seq %d sent %d times, want %d (hub saw %v)", seq, k, want, order)
		}
	}
}

// dropCounter counts the log's "result dropped, recorder busy" lines.
type dropCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (d dropCounter) Enabled(context.Context, slog.Level) bool { return true }

func (d dropCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "result dropped, recorder busy" {
		d.n.Add(1)
	}
	return nil
}

func (d dropCounter) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d dropCounter) WithGroup(string) slog.Handler      { return d }

// A result dropped because the recorder's queue is full is not lost: its
// operation is sent again, and again, until a result is recorded; the
// operations whose results were queued are not.
func TestDroppedResultSentAgain(t *testing.T) {
	const n = 6
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range n {
		if _, err := r.box.Enqueue("consent", []byte(`{}`), time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	h := newSlowRecorderHub(t, ctx, r, 0) // answers everything
	var dropped atomic.Int64
	rec := newHeldRecorder()
	clk := newFakeClock()
	u := New(Options{Totem: totem, Outbox: r.box, URL: r.srv.URL(), Username: r.totem.Username, Password: r.totem.Password,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond, ResendAfter: resendAfter2, Clock: clk,
		Logger: slog.New(dropCounter{n: &dropped}), beforeRecord: rec.before})
	u.results = make(chan *protocol.Result, 1) // one result waits; the rest are dropped
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	defer rec.free()

	// Each op was sent and answered once: the recorder holds a result or
	// two, one may wait in the queue, the others were dropped.
	select {
	case <-rec.held:
	case <-ctx.Done():
		t.Fatal("no result reached the recorder")
	}
	var kept int
	for {
		kept = rec.inHand() + len(u.results)
		if int(dropped.Load())+kept == n {
			break
		}
		if ctx.Err() != nil {
			_, order := h.arrivals(0)
			t.Fatalf("%d results dropped, %d kept, want %d in all (hub saw %v)", dropped.Load(), kept, n, order)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if kept == n {
		t.Fatal("no result dropped") // the queue holds one
	}

	// The timer sends the ops whose results were dropped again, not those
	// whose results wait; the new results are dropped too (the recorder
	// is still held).
	// (The hub answers on goroutines of its own: which results were kept
	// is not known, only how many.)
	clk.Advance(resendAfter2)
	for {
		if _, order := h.arrivals(0); len(order) >= 2*n-kept {
			break
		}
		if ctx.Err() != nil {
			_, order := h.arrivals(0)
			t.Fatalf("the %d ops whose results were dropped never sent again (hub saw %v)", n-kept, order)
		}
		time.Sleep(5 * time.Millisecond)
	}
	once1 := func() int {
		c := 0
		for seq := uint64(1); seq <= n; seq++ {
			if k, _ := h.arrivals(seq); k == 1 {
				c++
			}
		}
		return c
	}
	if c := once1(); c != kept {
		_, order := h.arrivals(0)
		t.Fatalf("%d ops sent once, want the %d whose results wait (hub saw %v)", c, kept, order)
	}

	// The recorder catches up; the timer sends what is still unanswered
	// until everything is recorded.
	rec.free()
	for r.depth(t) > 0 {
		if ctx.Err() != nil {
			t.Fatalf("backlog stuck at %d", r.depth(t))
		}
		clk.Advance(resendAfter2)
		time.Sleep(5 * time.Millisecond)
	}
	if c := once1(); c != kept {
		_, order := h.arrivals(0)
		t.Fatalf("%d ops sent once, want the %d whose results were queued (hub saw %v)", c, kept, order)
	}
}

// While the hub answers, the operations behind the answered ones wait
// their turn there (it applies a totem's ops in order): the resend timer
// starts again with each result, so a slow hub draining a backlog is not
// sent the rest of the window again. Once it falls silent for
// ResendAfter, what is unanswered is sent again.
func TestNoResendWhileTheHubAnswers(t *testing.T) {
	const n = 4
	var checks atomic.Int64
	m := startManual(t, n, func() { checks.Add(1) })

	// Half a ResendAfter later the hub answers the first op.
	m.clk.Advance(resendAfter2 / 2)
	m.answer(1)
	m.awaitDepth(n-1, "the result of seq 1 recorded")
	// The others have waited ResendAfter since they were sent, but the
	// hub answered half of it ago: not overdue. Three checks after the
	// clock moved, the second one saw it and the loop drained since; a
	// new op then follows any resend on the lane.
	m.clk.Advance(resendAfter2 / 2)
	from := checks.Load()
	haltest.Until(t, m.ctx, "the session loop checking for overdue ops", func() bool { return checks.Load() >= from+3 })
	m.enqueue()
	m.awaitArrivals(n + 1)
	if got := m.arrived(); len(got) != n+1 || got[n] != n+1 {
		t.Fatalf("hub saw %v: ops sent again while the hub was answering", got)
	}

	// The hub falls silent for ResendAfter: everything unanswered is sent
	// again, in order.
	m.clk.Advance(resendAfter2)
	m.awaitArrivals(2*n + 1)
	if got := m.arrived(); !slices.Equal(got[n+1:], []uint64{2, 3, 4, 5}) {
		t.Fatalf("hub saw %v, want 2 3 4 5 sent again after the silence", got)
	}
}

// A second final result for an op whose first one waits for the recorder
// (the op was sent again before the first came, or two hub instances
// answered) is not queued: it would only take the recorder's time and
// the queue's room. A result for an op not in flight is queued, every
// copy: the outbox decides.
func TestDuplicateResultNotQueued(t *testing.T) {
	u := New(Options{Totem: totem})
	clk := newFakeClock()
	u.o.Clock = clk
	const id, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	u.backlog.inflight[id] = sent{seq: 1, at: clk.Now()}
	result := func(opID string, seq uint64) *paho.Publish {
		b, _ := protocol.Marshal(protocol.Result{V: 1, OpID: opID, Seq: seq,
			Transport:  protocol.Transport{Status: protocol.TransportReceived},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}})
		return &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafResult), Payload: b}
	}
	for range 3 {
		u.receive(context.Background(), result(id, 1))
	}
	if n := len(u.results); n != 1 {
		t.Fatalf("%d results queued for one op in flight answered 3 times, want 1", n)
	}
	for range 2 {
		u.receive(context.Background(), result(other, 2))
	}
	if n := len(u.results); n != 3 {
		t.Fatalf("%d results queued, want 3 (both copies for the op not in flight)", n)
	}
	// Recorded as not done (the outbox does not know it): the mark is
	// taken back, and a later result is queued again.
	u.backlog.unanswered(id)
	u.receive(context.Background(), result(id, 1))
	if n := len(u.results); n != 4 {
		t.Fatalf("%d results queued, want 4", n)
	}
}

// manual is an uplink with n ops queued, run on a fake clock against a
// hub that answers only when the test says (newManualHub), once all n
// arrived.
type manual struct {
	t             *testing.T
	r             *rig
	ctx           context.Context
	clk           *haltest.Clock
	enqueue       func()
	arrived       func() []uint64
	awaitArrivals func(k int)
	answer        func(seq uint64)
}

func startManual(t *testing.T, n int, resendCheck func()) *manual {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	m := &manual{t: t, r: newRig(t), ctx: ctx, clk: newFakeClock()}
	m.enqueue = func() {
		if _, err := m.r.box.Enqueue("consent", []byte(`{}`), time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		m.enqueue()
	}
	m.arrived, m.awaitArrivals, m.answer = newManualHub(t, ctx, m.r)
	m.r.run(t, ctx, Options{ResendAfter: resendAfter2, Clock: m.clk, resendCheck: resendCheck})
	m.awaitArrivals(n)
	return m
}

// awaitDepth waits, bounded by the test's context, until the outbox has
// depth ops pending.
func (m *manual) awaitDepth(depth int, what string) {
	m.t.Helper()
	haltest.Until(m.t, m.ctx, what, func() bool { return m.r.depth(m.t) == depth })
}

// newManualHub is a hub that answers only when the test says: arrived
// returns the arrival order, awaitArrivals waits for k arrivals, answer
// publishes seq's result.
func newManualHub(t *testing.T, ctx context.Context, r *rig) (arrived func() []uint64, awaitArrivals func(k int), answer func(seq uint64)) {
	var (
		mu    sync.Mutex
		order []uint64
		ids   = map[uint64]string{}
	)
	hub := dial(t, ctx, r.srv.URL(), r.hub, nil)
	t.Cleanup(func() { hub.Disconnect(context.Background()) })
	hub.AddOnPublishReceived(func(pr autopaho.PublishReceived) (bool, error) {
		if op, err := protocol.DecodeOp(pr.Packet.Payload); err == nil {
			mu.Lock()
			order = append(order, op.Seq)
			ids[op.Seq] = op.ID
			mu.Unlock()
		}
		return true, nil
	})
	if _, err := hub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.SharedOpFilter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	arrived = func() []uint64 { mu.Lock(); defer mu.Unlock(); return append([]uint64(nil), order...) }
	awaitArrivals = func(k int) {
		t.Helper()
		for len(arrived()) < k {
			if ctx.Err() != nil {
				t.Fatalf("hub saw %v, want %d arrivals", arrived(), k)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	answer = func(seq uint64) {
		t.Helper()
		mu.Lock()
		id := ids[seq]
		mu.Unlock()
		b, _ := protocol.Marshal(protocol.Result{V: 1, OpID: id, Seq: seq,
			Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: fmt.Sprint("P", seq)},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}})
		if _, err := hub.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafResult), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	return arrived, awaitArrivals, answer
}

// An op below one the hub answered was passed by (the hub applies in
// order): its answer was lost, and it is sent again ResendAfter after its
// send although the hub keeps answering; the ops above wait their turn.
func TestPassedOpSentAgainWhileTheHubAnswers(t *testing.T) {
	const n = 4
	m := startManual(t, n, nil)
	// The answer of seq 1 is lost; seq 2's comes half a ResendAfter later.
	m.clk.Advance(resendAfter2 / 2)
	m.answer(2)
	m.awaitDepth(n-1, "the result of seq 2 recorded")
	m.clk.Advance(resendAfter2 / 2)
	m.awaitArrivals(n + 1)
	// Anything sent with it came before a new op on the lane.
	m.enqueue()
	m.awaitArrivals(n + 2)
	if got := m.arrived(); !slices.Equal(got, []uint64{1, 2, 3, 4, 1, 5}) {
		t.Fatalf("hub saw %v, want seq 1 alone sent again", got)
	}
}

// heldRecorder holds the uplink's recorder at its first round
// (Options.beforeRecord) until free: held is closed once it holds, inHand
// is how many results it has in hand then.
type heldRecorder struct {
	held, release chan struct{}
	hold, let     sync.Once
	mu            sync.Mutex
	k             int
}

func newHeldRecorder() *heldRecorder {
	return &heldRecorder{held: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldRecorder) before(k int) {
	h.hold.Do(func() {
		h.mu.Lock()
		h.k = k
		h.mu.Unlock()
		close(h.held)
		<-h.release
	})
}

// free lets the recorder go on; it may be called more than once.
func (h *heldRecorder) free() { h.let.Do(func() { close(h.release) }) }

func (h *heldRecorder) inHand() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.k
}
