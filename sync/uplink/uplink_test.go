package uplink

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

const totem = "t-up"

// counting wraps an Authenticator and counts connection attempts; while
// refuse is set it refuses everyone, as a registry being restored does.
type counting struct {
	broker.Authenticator
	n      atomic.Int64
	refuse atomic.Bool
}

func (c *counting) Authenticate(u, p string) (string, bool) {
	c.n.Add(1)
	if c.refuse.Load() {
		return "", false
	}
	return c.Authenticator.Authenticate(u, p)
}

type rig struct {
	srv     *broker.Server
	auth    *counting
	totem   creds.File
	hub     creds.File
	console creds.File
	box     *outbox.Outbox
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{}
	c := synctest.Start(t, synctest.Options{Users: []synctest.User{{Name: totem, Role: creds.RoleTotem}, {Name: "ops", Role: creds.RoleConsole}},
		Auth: func(a broker.Authenticator) broker.Authenticator { r.auth = &counting{Authenticator: a}; return r.auth }})
	r.srv, r.totem, r.hub, r.console = c.Broker, c.Creds(totem), c.HubCreds, c.Creds("ops")
	var err error
	if r.box, err = outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.box.Close() })
	return r
}

func (r *rig) run(t *testing.T, ctx context.Context, o Options) (*Uplink, <-chan error) {
	o.Totem, o.Outbox = totem, r.box
	if o.URL == "" {
		o.URL = r.srv.URL()
	}
	if o.Username == "" {
		o.Username, o.Password = r.totem.Username, r.totem.Password
	}
	o.BackoffMin, o.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	u := New(o)
	errc := make(chan error, 1)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		errc <- u.Run(ctx)
		close(done)
	}()
	// Every uplink a test starts is stopped and waited for.
	t.Cleanup(func() { cancel(); <-done })
	return u, errc
}

func dial(t *testing.T, ctx context.Context, srvURL string, f creds.File, recv func(*autopaho.ConnectionManager, *paho.Publish)) *autopaho.ConnectionManager {
	t.Helper()
	return synctest.Dial(t, ctx, srvURL, f, "", recv)
}

// Credentials refused (0x86) are asked again only after CredentialsRetry
// (an hour by default): never in a loop that would lock the account, yet
// never given up, so credentials mended at the hub bring the totem back.
func TestCredentialsRefusedRetriesRarely(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u, errc := r.run(t, ctx, Options{Username: totem, Password: "wrong", CredentialsRetry: time.Hour})
	awaitRunning(t, ctx, errc, func() bool { return r.auth.n.Load() >= 1 }, "no connection attempt in 15 s")
	time.Sleep(300 * time.Millisecond) // several network backoff periods
	if n := r.auth.n.Load(); n != 1 {
		t.Fatalf("%d authentication attempts, want 1 (retries lock accounts)", n)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v: a refusal must not stop the totem for good", err)
	default:
	}
	ref, ok := u.Refused()
	if !ok || ref.Code != 0x86 || u.Connected() {
		t.Fatalf("Refused() = %+v, %v; connected %v", ref, ok, u.Connected())
	}
}

// Credentials refused, then mended at the hub: the totem is back at its
// next rare attempt, with no visit.
func TestCredentialsMendedAtTheHub(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r.auth.refuse.Store(true)
	u, errc := r.run(t, ctx, Options{CredentialsRetry: 200 * time.Millisecond})
	awaitRunning(t, ctx, errc, func() bool { return r.auth.n.Load() >= 1 }, "no connection attempt in 15 s")
	r.auth.refuse.Store(false) // the registry restored
	awaitRunning(t, ctx, errc, u.Connected, "not connected after the credentials were mended")
	if last := u.lastRefusal(); last == nil || last.Code != 0x86 || last.Reason != "nome utente o password errati" {
		t.Fatalf("telemetry's refusal = %+v", last)
	}
}

// resendAfter2 is the ResendAfter of TestResendOnGapAndSilence's phase 2:
// short, so the uplink looks often (every third of it, in real time) at
// a clock that the test moves.
const resendAfter2 = 30 * time.Millisecond

// A hub that refuses for a gap, and one that forgets to answer: the uplink
// sends again, in order, until every operation has its final result.
func TestResendOnGapAndSilence(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	enqueue := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := r.box.Enqueue("consent", []byte(`{}`), time.Now(), time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var order []uint64
	silent := make(chan struct{}) // closed when the hub ignored seq 4
	hub := dial(t, ctx, r.srv.URL(), r.hub, func(cm *autopaho.ConnectionManager, p *paho.Publish) {
		op, err := protocol.DecodeOp(p.Payload)
		if err != nil {
			t.Errorf("hub got a bad op: %v", err)
			return
		}
		mu.Lock()
		seen[op.Seq]++
		n := seen[op.Seq]
		order = append(order, op.Seq)
		mu.Unlock()
		res := protocol.Result{V: 1, OpID: op.ID, Seq: op.Seq}
		if op.Seq == 4 && n == 2 {
			// A slow answer, many ResendAfter of real time: only the
			// uplink's clock says when to send again, and it has not
			// moved since the resend.
			time.Sleep(10 * resendAfter2)
		}
		switch {
		case op.Seq == 2 && n == 1: // another hub instance had not applied 1 yet
			res.Transport = protocol.Transport{Status: protocol.TransportRefused}
			res.Processing.Status = protocol.ProcessingPending
			res.Expect = 1
		case op.Seq == 4 && n == 1: // no answer at all
			close(silent)
			return
		case op.Seq == 5 && n == 1: // the hub's backend could not decide
			res.Transport = protocol.Transport{Status: protocol.TransportRefused}
			res.Processing.Status = protocol.ProcessingPending
		default:
			res.Transport = protocol.Transport{Status: protocol.TransportReceived, Protocol: "P" + string(rune('0'+op.Seq))}
			res.Processing.Status = protocol.ProcessingAccepted
		}
		b, _ := protocol.Marshal(res)
		cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafResult), QoS: 1, Payload: b})
	})
	defer hub.Disconnect(context.Background())
	if _, err := hub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.SharedOpFilter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	results := make(chan outbox.Entry, 16)
	final := map[uint64]outbox.Entry{}
	onResult := func(e outbox.Entry) {
		mu.Lock()
		if e.Done {
			final[e.Seq] = e
		}
		mu.Unlock()
		select {
		case results <- e:
		default:
		}
	}
	drained := func() {
		t.Helper()
		for {
			q, err := r.box.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if q.Depth == 0 {
				return
			}
			select {
			case <-ctx.Done():
				mu.Lock()
				t.Fatalf("queue stuck at %+v; hub saw %v", q, order)
			case <-results:
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// told waits until OnResult was told of seq's final result (the outbox
	// records it just before).
	told := func(seq uint64) {
		t.Helper()
		for {
			mu.Lock()
			_, ok := final[seq]
			mu.Unlock()
			if ok {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("OnResult never told of seq %d", seq)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	enqueue(3)
	// Phase 1: only the gap refusal can cause a resend (the timer is far).
	ctx1, cancel1 := context.WithCancel(ctx)
	_, errc := r.run(t, ctx1, Options{ResendAfter: time.Hour, OnResult: onResult})
	drained()
	cancel1()
	<-errc
	mu.Lock()
	if seen[1] < 1 || seen[2] < 2 || seen[3] < 1 {
		t.Fatalf("gap: deliveries per seq %v (order %v); seq 2 must be sent again", seen, order)
	}
	mu.Unlock()

	// Phase 2: the hub stays silent the first time it gets seq 4. The
	// uplink's clock moves by ResendAfter once the hub has ignored it,
	// and never again: one resend, however slow this machine is.
	ctx2, cancel2 := context.WithCancel(ctx)
	clk := newFakeClock()
	_, errc = r.run(t, ctx2, Options{ResendAfter: resendAfter2, Clock: clk, OnResult: onResult})
	enqueue(1)
	select {
	case <-silent:
	case <-ctx.Done():
		t.Fatal("seq 4 never reached the hub")
	}
	clk.Advance(resendAfter2)
	drained()
	told(4)
	cancel2()
	<-errc

	// Phase 3: a refusal without an expected seq (the hub's backend
	// failed) is sent again at once; the timer is far.
	r.run(t, ctx, Options{ResendAfter: time.Hour, OnResult: onResult})
	enqueue(1)
	drained()
	told(5)
	mu.Lock()
	defer mu.Unlock()
	if seen[4] != 2 || seen[5] != 2 {
		t.Fatalf("seq 4 delivered %d times, seq 5 %d (order %v), want 2 each", seen[4], seen[5], order)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		e := final[seq]
		if !e.Done || e.Result.Transport.Protocol != "P"+string(rune('0'+seq)) {
			t.Fatalf("seq %d: %+v", seq, e)
		}
	}
}

func TestCommands(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var calls atomic.Int64
	tech, verifier := technician(t)
	var refusedMu sync.Mutex
	var refused []string // what OnRefused heard, before each refusal's reply went out
	u, _ := r.run(t, ctx, Options{OnCommand: func(_ context.Context, c *protocol.Command) *protocol.Reply {
		calls.Add(1)
		return &protocol.Reply{ID: c.ID, OK: true}
	}, OnRefused: func(c *protocol.Command, rep *protocol.Reply) {
		refusedMu.Lock()
		refused = append(refused, c.ID+" "+rep.Code)
		refusedMu.Unlock()
	}, Verifier: verifier})
	until(ctx, u.Connected)
	// A command published before the cmd subscription would reach no
	// one: wait for the connection's subscriptions, not for a while.
	if err := u.awaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	replies := make(chan *paho.Publish, 8)
	con := dial(t, ctx, r.srv.URL(), r.console, func(_ *autopaho.ConnectionManager, p *paho.Publish) { replies <- p })
	defer con.Disconnect(context.Background())
	rt := protocol.ReplyTopic(totem, "ops")
	if _, err := con.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	send := func(payload []byte, respTopic string, corr string) {
		t.Helper()
		if _, err := con.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafCmd), QoS: 1, Payload: payload,
			Properties: &paho.PublishProperties{ResponseTopic: respTopic, CorrelationData: []byte(corr)}}); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(id, name string, issued time.Time) []byte {
		t.Helper()
		c := protocol.Command{V: 1, ID: id, Name: name}
		if err := cmdsig.Sign(tech, &c, totem, "", issued, time.Minute); err != nil {
			t.Fatal(err)
		}
		b, _ := protocol.Marshal(c)
		return b
	}
	good := sign("c1c1c1c1c1c1c1c1", "ping", time.Now())
	expired := sign("c2c2c2c2c2c2c2c2", "ping", time.Now().Add(-time.Hour))
	unsigned, _ := protocol.Marshal(protocol.Command{V: 1, ID: "c3c3c3c3c3c3c3c3", Name: "ping"})
	cancelOp := sign("c4c4c4c4c4c4c4c4", "cancel", time.Now())

	send(good, "totem/v1/other/reply/ops", "x") // foreign response topic: dropped, no call
	send(good, "", "y")                         // no response topic: dropped
	send([]byte("{garbage"), rt, "bad")         // answered with an error
	send(expired, rt, "old")                    // refused, not executed
	send(unsigned, rt, "unsigned")              // refused
	send(cancelOp, rt, "role")                  // refused: a technician cannot cancel
	send(good, rt, "corr-1")                    // answered
	got := map[string]*protocol.Reply{}
	// collect keeps the replies, by correlation data, until enough.
	collect := func(enough func() bool) {
		t.Helper()
		for !enough() {
			select {
			case p := <-replies:
				rep, err := protocol.DecodeReply(p.Payload)
				if err != nil {
					t.Fatal(err)
				}
				got[string(p.Properties.CorrelationData)] = rep
			case <-ctx.Done():
				t.Fatalf("replies %v", got)
			}
		}
	}
	collect(func() bool { return len(got) >= 5 })
	if r := got["corr-1"]; r == nil || !r.OK || r.ID != "c1c1c1c1c1c1c1c1" {
		t.Fatalf("reply to the good command: %+v", r)
	}
	if r := got["bad"]; r == nil || r.OK {
		t.Fatalf("reply to garbage: %+v", r)
	}
	for corr, code := range map[string]string{"old": cmdsig.CodeExpired, "unsigned": cmdsig.CodeUnsigned, "role": cmdsig.CodeOutOfRole} {
		if r := got[corr]; r == nil || r.OK || r.Code != code {
			t.Fatalf("reply to %s: %+v, want code %s", corr, r, code)
		}
	}
	send(good, rt, "again") // the same command again: a replay
	collect(func() bool { return got["again"] != nil })
	if r := got["again"]; r.OK || r.Code != cmdsig.CodeReplayed {
		t.Fatalf("reply to the replay: %+v", r)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("OnCommand called %d times, want 1", n)
	}
	refusedMu.Lock()
	defer refusedMu.Unlock()
	slices.Sort(refused)
	want := []string{"c1c1c1c1c1c1c1c1 replayed", "c2c2c2c2c2c2c2c2 expired", "c3c3c3c3c3c3c3c3 unsigned", "c4c4c4c4c4c4c4c4 out_of_role"}
	if !slices.Equal(refused, want) {
		t.Fatalf("OnRefused heard %q, want %q", refused, want)
	}
}

func TestEventReachesConsole(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, _ := r.run(t, ctx, Options{})
	got := make(chan *protocol.Event, 4)
	con := dial(t, ctx, r.srv.URL(), r.console, func(_ *autopaho.ConnectionManager, p *paho.Publish) {
		if e, err := protocol.DecodeEvent(p.Payload); err == nil {
			got <- e
		}
	})
	defer con.Disconnect(context.Background())
	if _, err := con.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic(totem, protocol.LeafEvent), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	until(ctx, u.Connected)
	u.Event(protocol.Event{Level: protocol.LevelAlarm, Code: "reader_gone", Message: "card reader not available"})
	select {
	case e := <-got:
		if e.Totem != totem || e.Code != "reader_gone" || e.Level != protocol.LevelAlarm || e.At.IsZero() {
			t.Fatalf("event %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("event never reached the console")
	}
}

// The presence message (the retained online) says the totem's version,
// location and ASL: the hub's fleet registry keeps them, and a fleet job
// may target an ASL's totems.
func TestPresenceSaysASL(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.run(t, ctx, Options{Version: "2.0.0", Location: "Atrio", ASL: "ASL Roma 1"})
	got := make(chan *protocol.State, 4)
	hub := dial(t, ctx, r.srv.URL(), r.hub, func(_ *autopaho.ConnectionManager, p *paho.Publish) {
		if st, err := protocol.DecodeState(p.Payload); err == nil && st.Status == protocol.Online {
			got <- st
		}
	})
	defer hub.Disconnect(context.Background())
	if _, err := hub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic(totem, protocol.LeafState), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-got:
		if st.Totem != totem || st.ASL != "ASL Roma 1" || st.Location != "Atrio" || st.Version != "2.0.0" {
			t.Fatalf("presence %+v", st)
		}
	case <-ctx.Done():
		t.Fatal("no online presence")
	}
}
