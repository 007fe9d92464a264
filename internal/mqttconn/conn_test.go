package mqttconn

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// counting is a net.Conn that counts its reads and writes; a write waits
// while gate is held.
type counting struct {
	net.Conn
	reads, writes atomic.Int64
	gate          sync.Mutex
}

func (c *counting) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *counting) Write(p []byte) (int, error) {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// pair is a loopback TCP connection: the client side counted, and the
// server side.
func pair(t *testing.T) (*counting, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return &counting{Conn: c}, s
}

func publish(topic string, id uint16, payload []byte) *packets.Publish {
	return &packets.Publish{Topic: topic, QoS: 1, PacketID: id, Payload: payload, Properties: &packets.Properties{}}
}

// Many packets that arrived together are read in a few reads, not three
// or more each (paho reads the fixed header a byte at a time).
func TestReadsAreBuffered(t *testing.T) {
	cc, s := pair(t)
	const n = 200
	var all bytes.Buffer
	for i := range n {
		publish("totem/v1/t1/result", uint16(i+1), []byte(`{"v":1}`)).WriteTo(&all)
	}
	if _, err := s.Write(all.Bytes()); err != nil {
		t.Fatal(err)
	}
	c := Wrap(cc)
	defer c.Close()
	for i := range n {
		cp, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatal(err)
		}
		if p := cp.Content.(*packets.Publish); p.PacketID != uint16(i+1) {
			t.Fatalf("packet %d has id %d", i, p.PacketID)
		}
	}
	if r := cc.reads.Load(); r > n/10 {
		t.Errorf("%d packets read in %d reads of the connection", n, r)
	}
}

// Packets written while a write is on its way leave together, each whole
// and in order per writer, from concurrent writers.
func TestWritesCoalesceAndKeepPackets(t *testing.T) {
	cc, s := pair(t)
	c := Wrap(cc)
	const writers, each = 8, 100
	cc.gate.Lock() // the first write waits: the others queue behind it
	queued := make(chan struct{})
	go func() {
		<-queued
		cc.gate.Unlock()
	}()
	var wg sync.WaitGroup
	var finished atomic.Int64
	for w := range writers {
		wg.Go(func() {
			defer finished.Add(1)
			for i := range each {
				p := publish(fmt.Sprintf("totem/v1/w%d/op", w), uint16(i+1), bytes.Repeat([]byte{'x'}, 100+i))
				if _, err := p.WriteTo(c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// Every writer but the one whose write is under way has queued all
	// its packets (they return at once); then that write ends.
	for deadline := time.Now().Add(10 * time.Second); finished.Load() < writers-1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(queued)
	wg.Wait()
	next := make([]uint16, writers)
	for range writers * each {
		cp, err := packets.ReadPacket(s)
		if err != nil {
			t.Fatal(err)
		}
		p := cp.Content.(*packets.Publish)
		var w int
		if _, err := fmt.Sscanf(p.Topic, "totem/v1/w%d/op", &w); err != nil {
			t.Fatalf("topic %q", p.Topic)
		}
		next[w]++
		if p.PacketID != next[w] || len(p.Payload) != 100+int(p.PacketID)-1 {
			t.Fatalf("writer %d: packet %d (%d bytes) where %d was due", w, p.PacketID, len(p.Payload), next[w])
		}
	}
	// The write under way, then everything queued behind it, then the
	// last writer's other packets, each alone: nothing queues behind them.
	if n := cc.writes.Load(); n > each+2 {
		t.Errorf("%d packets in %d writes of the connection", writers*each, n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close sends what is still queued before it closes; a write after it
// fails.
func TestCloseFlushes(t *testing.T) {
	cc, s := pair(t)
	c := Wrap(cc)
	// A write under way (held by the gate) while ten packets queue
	// behind it: Close waits for it, and sends them.
	cc.gate.Lock()
	go c.Write([]byte{0xc0, 0}) // a PINGREQ
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.mu.Lock()
		f := c.flushing
		c.mu.Unlock()
		if f || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 10 {
		if _, err := publish("totem/v1/t1/op", uint16(i+1), []byte("p")).WriteTo(c); err != nil {
			t.Fatal(err)
		}
	}
	go func() { time.Sleep(20 * time.Millisecond); cc.gate.Unlock() }()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(got)
	if cp, err := packets.ReadPacket(r); err != nil || cp.Type != packets.PINGREQ {
		t.Fatalf("first packet %v, %v", cp, err)
	}
	for i := range 10 {
		cp, err := packets.ReadPacket(r)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if id := cp.Content.(*packets.Publish).PacketID; id != uint16(i+1) {
			t.Fatalf("packet %d has id %d", i, id)
		}
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Error("a write after Close succeeded")
	}
}

// A failed write fails the writes after it and closes the connection.
func TestWriteErrorSticks(t *testing.T) {
	cc, s := pair(t)
	c := Wrap(cc)
	defer c.Close()
	s.Close()
	cc.Conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Write([]byte("x"))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed connection keep succeeding")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("read succeeded after the write error")
	}
}
