package broker

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/aslcns/totem/sync/protocol"
)

// holdEnd holds, once it is armed, the end of client id's connection on
// mochi's goroutine for it: at its OnDisconnect (before mochi checks
// whether the connection was taken over) or, with late set, at the
// OnUnsubscribed of its clean-up (after that check, before mochi deletes
// the client id's entry).
type holdEnd struct {
	mqtt.HookBase
	id      string
	late    bool
	armed   atomic.Bool
	held    chan struct{} // closed when the end is held
	release chan struct{} // closed by the test
}

func newHoldEnd(id string, late bool) *holdEnd {
	return &holdEnd{id: id, late: late, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdEnd) ID() string { return "test-hold-end" }

func (h *holdEnd) Provides(b byte) bool { return b == mqtt.OnDisconnect || b == mqtt.OnUnsubscribed }

func (h *holdEnd) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if !h.late {
		h.hold(cl)
	}
}

func (h *holdEnd) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	if h.late {
		h.hold(cl)
	}
}

func (h *holdEnd) hold(cl *mqtt.Client) {
	if cl.ID != h.id || cl.Net.Inline || !h.armed.CompareAndSwap(true, false) {
		return
	}
	close(h.held)
	<-h.release
}

// dialRaw connects totem user as dial does, without failing the test (it
// runs on a goroutine of its own) or registering a clean-up, and returns
// its connection too.
func dialRaw(addr, user, pass string, msgs chan *paho.Publish) (*paho.Client, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { msgs <- pr.Packet; return true, nil },
		},
		PacketTimeout: 5 * time.Second,
	})
	cp := &paho.Connect{ClientID: user, KeepAlive: 30, CleanStart: true, Username: user, UsernameFlag: true,
		Password: []byte(pass), PasswordFlag: true}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return c, conn, nil
}

// takeOverWhileHeld connects totem A, subscribes it to its results, drops
// its socket and, while hold keeps mochi's end of that connection, has A
// connect again. It releases hold as soon as the new connection is in
// (mochi's takeover, as before the fix) or the broker says it waits for
// the old one (retire), whichever comes first, or when waitFirst is over;
// then the new connection subscribes, the old connection's goroutine
// ends, and the new one must receive a result published to it.
func takeOverWhileHeld(t *testing.T, f *fleet, hold *holdEnd, waitFirst bool) {
	t.Helper()
	if err := f.srv.mq.AddHook(hold, nil); err != nil {
		t.Fatal(err)
	}
	topic := protocol.Root + "/A/" + protocol.LeafResult
	pass := f.users["A"].Password

	old, oldConn, err := dialRaw(f.srv.Addr(), "A", pass, make(chan *paho.Publish, 10))
	if err != nil {
		t.Fatal(err)
	}
	if code, err := (&client{Client: old}).sub(t, topic); code != 1 || err != nil {
		t.Fatalf("first connection: SUBACK %#x, %v", code, err)
	}
	hold.armed.Store(true)
	oldConn.Close() // the totem dies: no DISCONNECT
	select {
	case <-hold.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the broker never noticed the first connection end")
	}

	type result struct {
		c   *paho.Client
		err error
	}
	msgs := make(chan *paho.Publish, 10)
	connected := make(chan result, 1)
	go func() {
		c, _, err := dialRaw(f.srv.Addr(), "A", pass, msgs)
		connected <- result{c, err}
	}()
	released := false
	release := func() {
		if !released {
			released = true
			close(hold.release)
		}
	}
	defer release()
	var r result
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case r = <-connected:
			release()
			break wait
		case <-time.After(time.Millisecond):
			if !waitFirst && f.srv.Stats().TakeoverWaits > 0 {
				release()
			}
		case <-deadline:
			t.Fatal("the second connection never got in")
		}
	}
	if r.err != nil {
		t.Fatalf("second connection: %v", r.err)
	}
	nc := &client{Client: r.c, msgs: msgs}
	t.Cleanup(func() { _ = nc.Disconnect(&paho.Disconnect{}); <-nc.Done() })
	if code, err := nc.sub(t, topic); code != 1 || err != nil {
		t.Fatalf("second connection: SUBACK %#x, %v", code, err)
	}
	// mochi is done with the first connection when only one is counted.
	for end := time.Now().Add(5 * time.Second); atomic.LoadInt64(&f.srv.mq.Info.ClientsConnected) != 1; {
		if time.Now().After(end) {
			t.Fatalf("%d clients connected, want 1", atomic.LoadInt64(&f.srv.mq.Info.ClientsConnected))
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.srv.Publish(topic, []byte("r1"), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if string(m.Payload) != "r1" {
			t.Errorf("got %q on %s", m.Payload, m.Topic)
		}
	case <-time.After(5 * time.Second):
		_, listed := f.srv.mq.Clients.Get("A")
		t.Fatalf("the new connection is up and subscribed but receives nothing (in mochi's clients: %v); %s",
			listed, f.srv.Stats())
	}
}

// A totem whose old connection is still being cleaned up by mochi when it
// connects again (killed and restarted, flaky Wi-Fi) must not be left
// connected and deaf: mochi's clean-up of the old connection, past its
// "taken over?" check, deletes the client id's entry, which by then is the
// new connection's (authHook.retire). Failed before the fix: the publish
// never arrived, the new client missing from mochi's clients.
func TestTakeoverDuringOldCleanupKeepsNewConnection(t *testing.T) {
	f := startFleet(t, 0)
	takeOverWhileHeld(t, f, newHoldEnd("A", true), false)
	if s := f.srv.Stats(); s.TakeoverWaits != 1 || s.TakeoverTimeouts != 0 {
		t.Errorf("TakeoverWaits %d TakeoverTimeouts %d, want 1 and 0", s.TakeoverWaits, s.TakeoverTimeouts)
	}
}

// An old connection that does not end within takeoverWait does not keep
// the totem out: the new one gets in, counted and logged, and the old one,
// ending later, finds itself taken over and leaves the session alone.
func TestTakeoverOldConnectionNeverEnding(t *testing.T) {
	f := startFleet(t, 0)
	takeOverWhileHeld(t, f, newHoldEnd("A", false), true)
	if s := f.srv.Stats(); s.TakeoverWaits != 1 || s.TakeoverTimeouts != 1 {
		t.Errorf("TakeoverWaits %d TakeoverTimeouts %d, want 1 and 1", s.TakeoverWaits, s.TakeoverTimeouts)
	}
}
