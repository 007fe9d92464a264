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
//
// No goroutine of its own: the writer that ends a packet when no write is
// under way writes it at once, then whatever other writers queued
// meanwhile, until nothing is left; a writer that ends its packet while
// a write is under way leaves it to that one.
type Conn struct {
	net.Conn
	r        *bufio.Reader
	pkt      sync.Mutex  // held while paho writes one packet
	inPkt    atomic.Bool // the writer holds pkt: the write waits for Unlock
	mu       sync.Mutex  // guards what follows
	cond     *sync.Cond  // signalled when a write ended
	buf      []byte      // waiting to be written
	spare    []byte      // the buffer the last write took, for reuse
	flushing bool        // a writer is writing buf out
	err      error       // the first write error: every later write fails with it
	closed   bool
}

// Wrap returns c with buffered reads and coalesced writes; Close closes c.
func Wrap(c net.Conn) *Conn {
	w := &Conn{Conn: c, r: bufio.NewReaderSize(c, readBuffer)}
	w.cond = sync.NewCond(&w.mu)
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

// Unlock ends a packet: it is written now, or by the write under way.
func (c *Conn) Unlock() {
	c.inPkt.Store(false)
	c.pkt.Unlock()
	c.flush()
}

// Write queues p; it fails with the error a previous write met, or once
// the connection is closed. Outside a packet's lock it writes at once.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closed && c.flushing && len(c.buf) >= maxPending {
		c.cond.Wait()
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
		c.flush()
	}
	return len(p), nil
}

// flush writes what is queued, and what is queued meanwhile, unless a
// write is under way: that one writes it.
func (c *Conn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushing {
		return
	}
	c.flushing = true
	for len(c.buf) > 0 && c.err == nil {
		b := c.buf
		c.buf, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		_, err := c.Conn.Write(b)
		c.mu.Lock()
		if cap(b) <= maxPending {
			c.spare = b[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
			c.Conn.Close() // the reader learns it too
		}
		c.cond.Broadcast()
	}
	c.flushing = false
	c.cond.Broadcast()
}

// Close writes what is queued (waiting closeFlush at most) and closes
// the connection.
func (c *Conn) Close() error {
	c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
	c.flush()
	c.mu.Lock()
	for c.flushing {
		c.cond.Wait()
	}
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.Conn.Close()
}
