// Package mqttconn is the network connection under the paho MQTT clients
// of the hub and the totems (autopaho's AttemptConnection).
//
// paho reads a packet's fixed header from the connection a byte at a
// time and its body in another read: three read system calls or more per
// packet, where a buffered reader takes many packets in one. And paho
// writes every packet at once, each in its own system call (or several
// through a TLS connection): an acknowledgement per message received, a
// publish per result. Here a packet written while the previous write is
// still on its way waits in a buffer and leaves with the others queued
// meanwhile, in one write; a packet written to an idle connection leaves
// at once. Bytes keep their order, and packets their integrity: paho
// holds the connection's lock (sync.Locker) while it writes a packet.
package mqttconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

const (
	readBuffer = 16 << 10 // bytes read ahead
	// maxPending bounds what waits to be written: past it a writer
	// waits for the flush, as it would for the network.
	maxPending = 256 << 10
	// closeFlush bounds how long Close waits for what is still to be
	// written (a DISCONNECT) to leave.
	closeFlush = 2 * time.Second
)

// Conn is a connection with buffered reads and coalesced writes. It is a
// sync.Locker: paho holds the lock while it writes a packet's parts.
type Conn struct {
	net.Conn
	r      *bufio.Reader
	pkt    sync.Mutex  // held while paho writes one packet
	inPkt  atomic.Bool // the writer holds pkt: the flush waits for Unlock
	mu     sync.Mutex  // guards what follows
	room   *sync.Cond  // signalled when buf was taken
	buf    []byte      // waiting to be written
	spare  []byte      // the buffer the last flush wrote, for reuse
	err    error       // the first write error: every later write fails with it
	closed bool
	kick   chan struct{} // wakes the flusher
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the flusher exited
	once   sync.Once
}

// Wrap returns c with buffered reads and coalesced writes; Close closes c.
func Wrap(c net.Conn) *Conn {
	w := &Conn{Conn: c, r: bufio.NewReaderSize(c, readBuffer), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	w.room = sync.NewCond(&w.mu)
	go w.flusher()
	return w
}

// Dial connects to srv (mqtt://, tcp://, mqtts://, tls://) within
// timeout, as autopaho would, and wraps the connection.
func Dial(ctx context.Context, srv *url.URL, tlsCfg *tls.Config, timeout time.Duration) (*Conn, error) {
	c, err := DialRaw(ctx, srv, tlsCfg, timeout)
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// DialRaw connects to srv as Dial does, without wrapping the connection.
func DialRaw(ctx context.Context, srv *url.URL, tlsCfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	switch srv.Scheme {
	case "mqtt", "tcp", "":
		return d.DialContext(ctx, "tcp", srv.Host)
	case "mqtts", "ssl", "tls":
		return (&tls.Dialer{NetDialer: &d, Config: tlsCfg}).DialContext(ctx, "tcp", srv.Host)
	}
	return nil, fmt.Errorf("mqttconn: broker url scheme %q", srv.Scheme)
}

// Read reads through the buffer. One goroutine reads at a time (paho's).
func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Lock is taken by paho before it writes a packet's parts.
func (c *Conn) Lock() {
	c.pkt.Lock()
	c.inPkt.Store(true)
}

// Unlock ends a packet: it leaves now, or with the next flush when one is
// under way.
func (c *Conn) Unlock() {
	c.inPkt.Store(false)
	c.pkt.Unlock()
	c.wake()
}

func (c *Conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Write queues p for the flusher; it fails with the error a previous
// write met, or once the connection is closed.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closed && len(c.buf) >= maxPending {
		c.room.Wait()
	}
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closed:
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	if !c.inPkt.Load() {
		c.wake() // a write outside a packet's lock
	}
	return len(p), nil
}

// flusher writes what is queued, all of it in one write, until Close.
func (c *Conn) flusher() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
			if !c.flush() {
				return
			}
		case <-c.stop:
			c.flush()
			return
		}
	}
}

// flush writes what is queued; false after a write error.
func (c *Conn) flush() bool {
	c.mu.Lock()
	b := c.buf
	c.buf, c.spare = c.spare[:0], nil
	c.room.Broadcast()
	c.mu.Unlock()
	if len(b) == 0 {
		c.mu.Lock()
		c.spare = b
		c.mu.Unlock()
		return true
	}
	_, err := c.Conn.Write(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cap(b) <= maxPending {
		c.spare = b[:0]
	}
	if err != nil {
		if c.err == nil {
			c.err = err
		}
		c.room.Broadcast()
		c.Conn.Close() // the reader learns it too
		return false
	}
	return true
}

// Close writes what is queued (waiting closeFlush at most) and closes
// the connection.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.room.Broadcast()
		c.mu.Unlock()
		c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
		close(c.stop)
	})
	<-c.done
	return c.Conn.Close()
}
