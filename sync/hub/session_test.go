package hub_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/paho"
)

// A totem's connection dies and it reconnects: the broker publishes the
// old connection's Last Will when it notices, which may be after the new
// connection's birth. The will carries the old
// session number, the birth the new one, and the registry keeps the totem
// online whatever order they arrive in.
func TestOldWillNeverOverridesNewerOnline(t *testing.T) {
	// With a credentials store the uplink builds each CONNECT itself
	// (the secret of a rotation): the will's session goes in as well.
	for _, withStore := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "store"}[withStore], func(t *testing.T) { oldWill(t, withStore) })
	}
}

func oldWill(t *testing.T, withStore bool) {
	ctx, c := startCentral(t, 30*time.Second, totemUser("t-sess"))
	tot := c.Creds("t-sess")
	states := make(chan *paho.Publish, 16)
	client(ctx, t, c.URL(), c.HubCreds, "watcher", states, protocol.Topic("t-sess", protocol.LeafState))
	start := func(url string, mono time.Duration) (context.CancelFunc, chan error) {
		box := synctest.QueuedOutboxAt(t, filepath.Join(t.TempDir(), "outbox.db"), 0)
		o := uplink.Options{Totem: "t-sess", URL: url, Username: tot.Username, Password: tot.Password,
			Outbox: box, Boot: "boot-1", Mono: func() time.Duration { return mono },
			// The one cut off must not come back at once.
			BackoffMin: time.Minute, BackoffMax: time.Minute}
		if withStore {
			o.Store = &creds.Store{Path: filepath.Join(t.TempDir(), "t-sess.json")}
			if err := creds.Save(o.Store.Path, tot); err != nil {
				t.Fatal(err)
			}
		}
		up := uplink.New(o)
		uctx, ucancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- up.Run(uctx) }()
		return ucancel, done
	}
	next := func() *protocol.State {
		t.Helper()
		select {
		case p := <-states:
			st, err := protocol.DecodeState(p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return st
		case <-ctx.Done():
			t.Fatal("no state message")
			return nil
		}
	}
	// The first connection goes through a proxy the test cuts: the broker
	// notices the connection gone and publishes its will.
	cut := proxy(t, c.Addr())
	stopA, doneA := start("mqtt://"+cut.addr, 1000*time.Millisecond)
	birthA := next()
	if birthA.Status != protocol.Online || birthA.Session != 1000 || birthA.Boot != "boot-1" {
		t.Fatalf("first birth %+v", birthA)
	}
	cut.close()
	stopB, doneB := start(c.URL(), 2000*time.Millisecond)
	defer func() { stopB(); <-doneB }()
	got := []*protocol.State{next(), next()}
	var will, birthB *protocol.State
	for _, st := range got {
		if st.Status == protocol.Offline {
			will = st
		} else {
			birthB = st
		}
	}
	if will == nil || birthB == nil || will.Session != birthA.Session || will.Boot != "boot-1" || birthB.Session != 2000 {
		t.Fatalf("after the takeover: %+v and %+v", got[0], got[1])
	}
	// Whatever the order, the registry ends online with the new session.
	for _, order := range [][]*protocol.State{{birthB, will}, {will, birthB}} {
		f, err := hub.OpenFleet(filepath.Join(t.TempDir(), "presence.db"), hub.FleetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range append([]*protocol.State{birthA}, order...) {
			b, _ := protocol.Marshal(st)
			hub.Observe(f, &paho.Publish{Topic: protocol.Topic("t-sess", protocol.LeafState), QoS: 1, Payload: b})
		}
		l := f.List(hub.FleetFilter{})
		f.Close()
		if len(l) != 1 || l[0].Status != protocol.Online || l[0].Session != 2000 {
			t.Fatalf("%s then %s: registry %+v", order[0].Status, order[1].Status, l)
		}
	}
	stopA()
	<-doneA
}

// cutProxy forwards TCP connections to a broker until closed, then drops
// them all and accepts no more.
type cutProxy struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func proxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
