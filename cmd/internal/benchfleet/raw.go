package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// A raw totem speaks only what docs/protocol.md documents — no outbox,
// no uplink, none of this repository's protocol types: it publishes Op
// envelopes it builds itself on totem/v1/{totem}/op (QoS 1), at most
// rawWindow without a final result, and reads Results on its result
// topic. It rewinds to a gap refusal's "expect", sends again what has no
// final result after rawResendAfter of silence, and everything unfinished
// after a reconnect. The storm mixes them among the uplinks so that the
// hub's guarantees are measured for any client that keeps to the
// document, not only for ours.
const (
	rawWindow      = 16
	rawResendAfter = 10 * time.Second
)

// rawOp is the Op envelope of docs/protocol.md.
type rawOp struct {
	V       int             `json:"v"`
	ID      string          `json:"id"`
	Totem   string          `json:"totem"`
	Seq     uint64          `json:"seq"`
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
	Created time.Time       `json:"created"`
	Expires time.Time       `json:"expires"`
}

// rawResult is the part of a Result the client needs.
type rawResult struct {
	OpID      string `json:"op_id"`
	Seq       uint64 `json:"seq"`
	Expect    uint64 `json:"expect"`
	Transport struct {
		Status string `json:"status"`
	} `json:"transport"`
	Processing struct {
		Status string `json:"status"`
	} `json:"processing"`
}

// final is docs/protocol.md's: received, and accepted or rejected.
func (r rawResult) final() bool {
	return r.Transport.Status == "received" && (r.Processing.Status == "accepted" || r.Processing.Status == "rejected")
}

type rawTotem struct {
	name, user, pass string
	addr             string // host:port of the broker (plain MQTT)
	ops              [][]byte
	ids              []string
	onFinal          func(seq uint64) // once per sequence number

	mu     sync.Mutex
	done   []bool
	next   uint64 // the next sequence number to send
	wake   chan struct{}
	resent int64 // operations sent more than once
	sent   []int
}

func newRawTotem(name, user, pass, addr string, queued int, payload []byte, onFinal func(uint64)) (*rawTotem, error) {
	t := &rawTotem{name: name, user: user, pass: pass, addr: addr, onFinal: onFinal,
		done: make([]bool, queued), sent: make([]int, queued), wake: make(chan struct{}, 1)}
	now := time.Now().UTC().Truncate(time.Second)
	for seq := 1; seq <= queued; seq++ {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		t.ids = append(t.ids, hex.EncodeToString(id[:]))
		b, err := json.Marshal(rawOp{V: 1, ID: t.ids[seq-1], Totem: name, Seq: uint64(seq), Kind: "consent",
			Payload: payload, Created: now, Expires: now.Add(30 * 24 * time.Hour)})
		if err != nil {
			return nil, err
		}
		t.ops = append(t.ops, b)
	}
	return t, nil
}

// run connects, sends and reconnects until every operation has its final
// result or ctx ends.
func (t *rawTotem) run(ctx context.Context) {
	for ctx.Err() == nil && !t.finished() {
		t.session(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (t *rawTotem) finished() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first() == 0
}

// first returns the lowest sequence number without a final result, 0
// when none is left. Under t.mu.
func (t *rawTotem) first() uint64 {
	for i, d := range t.done {
		if !d {
			return uint64(i + 1)
		}
	}
	return 0
}

// session is one connection: subscribe to the result topic, then send
// in order within the window until done or the connection ends.
func (t *rawTotem) session(ctx context.Context) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return
	}
	lost := make(chan struct{})
	var once sync.Once
	down := func() { once.Do(func() { close(lost) }) }
	c := paho.NewClient(paho.ClientConfig{Conn: bufConn{conn, bufio.NewReaderSize(conn, 4096)}, PacketTimeout: 30 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			t.result(pr.Packet.Payload)
			return true, nil
		}},
		OnClientError:      func(error) { down() },
		OnServerDisconnect: func(*paho.Disconnect) { down() }})
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ca, err := c.Connect(cctx, &paho.Connect{ClientID: t.name, KeepAlive: 30, CleanStart: true,
		Username: t.user, UsernameFlag: true, Password: []byte(t.pass), PasswordFlag: true})
	cancel()
	if err != nil || ca.ReasonCode != 0 {
		return
	}
	defer c.Disconnect(&paho.Disconnect{})
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "totem/v1/" + t.name + "/result", QoS: 1}}})
	cancel()
	if err != nil {
		return
	}
	t.mu.Lock()
	t.next = t.first() // everything unfinished again after a (re)connect
	t.mu.Unlock()
	silence := time.NewTimer(rawResendAfter)
	defer silence.Stop()
	for {
		for {
			b, ok := t.take()
			if !ok {
				break
			}
			if _, err := c.PublishWithOptions(ctx, &paho.Publish{Topic: "totem/v1/" + t.name + "/op", QoS: 1, Payload: b},
				paho.PublishOptions{Method: paho.PublishMethod_AsyncSend}); err != nil {
				return
			}
		}
		if t.finished() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-lost:
			return
		case <-t.wake:
			if !silence.Stop() {
				<-silence.C
			}
			silence.Reset(rawResendAfter)
		case <-silence.C:
			t.mu.Lock()
			t.next = t.first()
			t.mu.Unlock()
			silence.Reset(rawResendAfter)
		}
	}
}

// take returns the next operation to send within the window.
func (t *rawTotem) take() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.first()
	if f == 0 {
		return nil, false
	}
	for t.next <= uint64(len(t.ops)) && t.done[t.next-1] {
		t.next++
	}
	if t.next > uint64(len(t.ops)) || t.next >= f+rawWindow {
		return nil, false
	}
	i := t.next - 1
	t.next++
	if t.sent[i]++; t.sent[i] == 2 {
		t.resent++
	}
	return t.ops[i], true
}

func (t *rawTotem) result(b []byte) {
	var r rawResult
	if json.Unmarshal(b, &r) != nil || r.Seq < 1 || r.Seq > uint64(len(t.ops)) || r.OpID != t.ids[r.Seq-1] {
		return
	}
	t.mu.Lock()
	newly := false
	switch {
	case r.final():
		if !t.done[r.Seq-1] {
			t.done[r.Seq-1], newly = true, true
		}
	case r.Transport.Status == "refused" && r.Expect >= 1 && r.Expect < t.next:
		t.next = r.Expect // a gap: send again from what the hub expects
	}
	t.mu.Unlock()
	if newly {
		t.onFinal(r.Seq)
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// bufConn reads through a buffer: paho reads a packet's header a byte at
// a time, a system call each on a bare connection, and the raw totems
// share the machine's cores with the hub they measure.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// hostPort returns the host:port of an mqtt:// URL.
func hostPort(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}
