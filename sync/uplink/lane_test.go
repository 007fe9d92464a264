package uplink

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// newFakeClock is a clock that moves only when told to.
func newFakeClock() *haltest.Clock {
	return haltest.NewClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
}

func TestBucketLimitsABurst(t *testing.T) {
	clk := newFakeClock()
	b := newBucket(10, 5, clk) // 10 per second, 5 at once
	if n, _ := b.take(100); n != 5 {
		t.Fatalf("first burst granted %d, want 5", n)
	}
	n, wait := b.take(1)
	if n != 0 || wait != 100*time.Millisecond {
		t.Fatalf("dry bucket: %d tokens, wait %v; want 0 and 100ms", n, wait)
	}
	clk.Advance(50 * time.Millisecond)
	if n, wait := b.take(1); n != 0 || wait != 50*time.Millisecond {
		t.Fatalf("half a token: %d, wait %v", n, wait)
	}
	clk.Advance(50 * time.Millisecond)
	if n, _ := b.take(3); n != 1 {
		t.Fatalf("after 100ms granted %d, want 1", n)
	}
	b.give(1) // taken but not used
	if n, _ := b.take(5); n != 1 {
		t.Fatalf("given back: granted %d, want 1", n)
	}
	clk.Advance(time.Hour)
	if n, _ := b.take(100); n != 5 {
		t.Fatalf("after an hour granted %d, want the burst of 5", n)
	}
	if n, _ := newBucket(-1, 5, clk).take(7); n != 7 {
		t.Fatalf("unlimited bucket granted %d of 7", n)
	}
}

func TestOpWindowReservesPriorityShare(t *testing.T) {
	for _, c := range []struct {
		window int
		rm     uint16
		want   int
	}{
		{256, 1024, 256}, // mochi's default: the window fits
		{256, 0, 256},    // no receive maximum: 65 535
		{256, 20, 18},    // mosquitto's default: two ids left for the priority lane
		{1000, 1024, 896},
		{8, 2, 1},
	} {
		if got := opWindow(c.window, c.rm); got != c.want {
			t.Errorf("opWindow(%d, %d) = %d, want %d", c.window, c.rm, got, c.want)
		}
	}
}

func TestReconnectBackoffJitteredAndCapped(t *testing.T) {
	lo, hi := 500*time.Millisecond, 30*time.Second
	b := backoff(lo, hi)
	if d := b(0); d != 0 {
		t.Fatalf("delay before the first attempt %v, want 0", d)
	}
	distinct := map[time.Duration]bool{}
	var top time.Duration
	for range 200 {
		first := b(1)
		if first < lo || first > 2*lo {
			t.Fatalf("first retry after %v, want within [%v, %v]", first, lo, 2*lo)
		}
		late := b(40)
		if late < lo || late > hi {
			t.Fatalf("retry 40 after %v, want within [%v, %v]", late, lo, hi)
		}
		distinct[late] = true
		top = max(top, late)
	}
	if len(distinct) < 10 {
		t.Fatalf("only %d distinct delays in 200: no jitter", len(distinct))
	}
	if top <= 2*lo {
		t.Fatalf("longest delay %v: the ceiling never grew", top)
	}
	// Odd settings are made valid instead of panicking.
	if d := backoff(time.Second, time.Second)(3); d < time.Second {
		t.Fatalf("min = max: %v", d)
	}
}

// While a backlog is held back, by the token bucket or by a full in-flight
// window, a console command gets its reply, an event and a health report
// reach the console: the priority lane never waits behind operations. The
// held backlog has not moved meanwhile, then drains in order.
func TestPriorityLaneOvertakesBacklog(t *testing.T) {
	const backlog = 300
	for _, tc := range []struct {
		name   string
		opts   Options
		answer bool
		held   int // operations the hub sees before the backlog is held
	}{
		{name: "bucket", opts: Options{Burst: 40, Rate: 1}, answer: true, held: 40},
		{name: "window", opts: Options{Window: 8}, answer: false, held: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for g := range 10 {
				wg.Go(func() {
					for i := range backlog / 10 {
						if _, err := r.box.Enqueue("consent", fmt.Appendf(nil, `{"n":%d}`, g*1000+i), time.Now(), time.Time{}); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()

			var (
				mu    sync.Mutex
				order []uint64
			)
			var answer atomic.Bool
			answer.Store(tc.answer)
			hub := dial(t, ctx, r.srv.URL(), r.hub, func(cm *autopaho.ConnectionManager, p *paho.Publish) {
				op, err := protocol.DecodeOp(p.Payload)
				if err != nil {
					t.Errorf("hub got a bad op: %v", err)
					return
				}
				if !answer.Load() {
					return
				}
				res := protocol.Result{V: 1, OpID: op.ID, Seq: op.Seq,
					Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: fmt.Sprint("P", op.Seq)},
					Processing: protocol.Processing{Status: protocol.ProcessingAccepted}}
				b, _ := protocol.Marshal(res)
				cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafResult), QoS: 1, Payload: b})
			})
			defer hub.Disconnect(context.Background())
			// Arrival order, recorded on paho's goroutine (dial answers on
			// goroutines of its own).
			hub.AddOnPublishReceived(func(pr autopaho.PublishReceived) (bool, error) {
				if op, err := protocol.DecodeOp(pr.Packet.Payload); err == nil {
					mu.Lock()
					order = append(order, op.Seq)
					mu.Unlock()
				}
				return true, nil
			})
			if _, err := hub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.SharedOpFilter, QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			seen := func() int { mu.Lock(); defer mu.Unlock(); return len(order) }

			// The console listens to the reply, event and telemetry topics.
			got := make(chan *paho.Publish, 64)
			con := dial(t, ctx, r.srv.URL(), r.console, func(_ *autopaho.ConnectionManager, p *paho.Publish) { got <- p })
			defer con.Disconnect(context.Background())
			rt := protocol.ReplyTopic(totem, "ops")
			if _, err := con.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
				{Topic: rt, QoS: 1}, {Topic: protocol.Topic(totem, protocol.LeafEvent), QoS: 1},
				{Topic: protocol.Topic(totem, protocol.LeafTelemetry), QoS: 1}}}); err != nil {
				t.Fatal(err)
			}

			clk := newFakeClock() // frozen: a dry bucket stays dry
			o := tc.opts
			o.Clock = clk
			o.OnCommand = func(_ context.Context, c *protocol.Command) *protocol.Reply {
				return &protocol.Reply{ID: c.ID, OK: true}
			}
			tech, verifier := technician(t)
			o.Verifier = verifier
			u, _ := r.run(t, ctx, o)

			// Wait until the backlog is held: the hub saw what the bucket
			// or the window let through and, with answers, the results
			// are recorded.
			wantDepth := backlog
			if tc.answer {
				wantDepth = backlog - tc.held
			}
			for seen() < tc.held || r.depth(t) != wantDepth {
				if ctx.Err() != nil {
					t.Fatalf("backlog never held: hub saw %d, depth %d", seen(), r.depth(t))
				}
				time.Sleep(5 * time.Millisecond)
			}

			c := protocol.Command{V: 1, ID: "c1-0123456789abcdef", Name: "ping"}
			if err := cmdsig.Sign(tech, &c, totem, "", time.Now(), time.Minute); err != nil {
				t.Fatal(err)
			}
			cmd, _ := protocol.Marshal(c)
			if _, err := con.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafCmd), QoS: 1, Payload: cmd,
				Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte("k")}}); err != nil {
				t.Fatal(err)
			}
			u.Event(protocol.Event{Level: protocol.LevelAlarm, Code: "paper_low", Message: "paper low"})
			u.PublishTelemetry(ctx)
			var reply, event, report bool
			for !reply || !event || !report {
				select {
				case p := <-got:
					switch _, leaf, _ := protocol.ParseTopic(p.Topic); {
					case p.Topic == rt:
						rep, err := protocol.DecodeReply(p.Payload)
						reply = err == nil && rep.OK && rep.ID == c.ID
					case leaf == protocol.LeafEvent:
						e, err := protocol.DecodeEvent(p.Payload)
						event = err == nil && e.Code == "paper_low"
					case leaf == protocol.LeafTelemetry:
						tm, err := protocol.DecodeTelemetry(p.Payload)
						report = report || err == nil && tm.Queue.Depth == wantDepth
					}
				case <-ctx.Done():
					t.Fatalf("priority lane blocked: reply %v, event %v, health report %v", reply, event, report)
				}
			}
			// The backlog did not move while the priority lane went by.
			if n, d := seen(), r.depth(t); n != tc.held || d != wantDepth {
				t.Fatalf("after the priority messages the hub saw %d operations and %d are pending; want %d and %d",
					n, d, tc.held, wantDepth)
			}
			if !tc.answer {
				return
			}
			// Time passes: the bucket refills a burst at a time and the
			// backlog drains, in order, each operation once.
			for r.depth(t) > 0 {
				if ctx.Err() != nil {
					t.Fatalf("backlog stuck at %d", r.depth(t))
				}
				clk.Advance(time.Hour)
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(order) != backlog {
				t.Fatalf("hub saw %d operations, want %d", len(order), backlog)
			}
			for i, s := range order {
				if s != uint64(i+1) {
					t.Fatalf("operation %d arrived as seq %d: not in order", i+1, s)
				}
			}
		})
	}
}

func (r *rig) depth(t *testing.T) int {
	t.Helper()
	q, err := r.box.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return q.Depth
}

// A running link keeps a handful of goroutines: one records the results
// (64 did, each waiting for a commit of its own), which every garbage
// collection of a small totem scans.
func TestLinkKeepsFewGoroutines(t *testing.T) {
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	u := New(Options{Totem: "t1", URL: "mqtt://127.0.0.1:1", Outbox: box})
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond)
	if n := runtime.NumGoroutine() - before; n > 16 {
		t.Errorf("the running link has %d goroutines", n)
	}
}
