package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Accept retry, as net/http's Server.Serve: a failing Accept (EMFILE,
// ENFILE, ECONNABORTED…) is retried after a pause that doubles from
// acceptDelayMin up to acceptDelayMax.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
)

// listener is the broker's TCP listener for mochi. It owns the accept
// loop, so that a failing Accept never ends it (mochi's listeners.Net
// returns on the first error, and the broker then never accepts again),
// caps the connections open at once, and reads each connection's CONNECT
// itself, within a deadline and a size cap, before mochi sees the
// connection: mochi gives every connection, before it authenticates, a
// client with a 64 KiB write queue and a buffer as large as the packet
// announced, so a crowd of silent or oversized pre-auth sockets would
// otherwise cost the hub hundreds of MB.
type listener struct {
	id             string
	ln             net.Listener
	tls            *tls.Config   // nil: plain TCP
	total          *atomic.Int64 // connections open on every listener, capped at maxConns
	log            *slog.Logger  // ours: accept trouble
	mlog           *slog.Logger  // mochi's (Init), for what mochi's own listener logs
	stats          *counters
	sizing         *sizing
	maxConns       int
	connectTimeout time.Duration
	maxConnect     int

	done    chan struct{} // closed when Serve has returned
	closing chan struct{} // closed by shut: Serve stops retrying
	shutOne sync.Once
	end     atomic.Bool // no connection is handed to mochi any more

	mu     sync.Mutex
	conns  map[*trackedConn]struct{} // every connection accepted and not closed
	unread int                       // connections handed to mochi that have not read yet
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return l.ln.Addr().Network() }

func (l *listener) Init(log *slog.Logger) error {
	l.mlog = log
	return nil
}

// Serve accepts until the listener is closed. Every other Accept error is
// taken as passing (a full descriptor table empties as clients leave):
// logged once when a burst of them starts, counted, and retried with
// backoff.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer close(l.done)
	var (
		delay  time.Duration
		failed int64 // Accept errors in the current burst
	)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.end.Load() {
				return
			}
			l.stats.acceptErrors.Add(1)
			failed++
			if delay == 0 {
				delay = acceptDelayMin
				l.log.Warn("accept failing, retrying with backoff", "error", err)
			} else if delay *= 2; delay > acceptDelayMax {
				delay = acceptDelayMax
			}
			select {
			case <-time.After(delay):
			case <-l.closing:
				return
			}
			continue
		}
		if delay != 0 {
			l.log.Warn("accept recovered", "errors", failed)
			delay, failed = 0, 0
		}
		if l.total.Add(1) > int64(l.maxConns) {
			// Accepted and closed at once: the kernel's backlog does not
			// fill with clients that would time out anyway.
			l.total.Add(-1)
			l.stats.overCapacity.Add(1)
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, raw: c, l: l, ended: make(chan struct{})}
		if l.tls != nil {
			// No I/O yet: the handshake runs in handshake, under the
			// CONNECT deadline.
			tc.Conn = tls.Server(c, l.tls)
		}
		l.mu.Lock()
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		go l.handshake(tc, establish)
	}
}

// handshake reads the connection's first packet, which must be a CONNECT
// of at most maxConnect bytes, within connectTimeout, then hands the
// connection to mochi with the packet to read again. The deadline stays
// on the connection until mochi, having authenticated the client, sets
// its keep-alive deadline.
//
// On the TLS listener the TLS handshake comes first, within the same
// deadline: a client that stalls it costs no more than one that sends
// no CONNECT.
func (l *listener) handshake(tc *trackedConn, establish listeners.EstablishFn) {
	defer close(tc.ended)
	_ = tc.Conn.SetDeadline(time.Now().Add(l.connectTimeout))
	if t, ok := tc.Conn.(*tls.Conn); ok {
		if err := t.Handshake(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.stats.connectTimeouts.Add(1)
			} else {
				l.stats.tlsFailures.Add(1)
			}
			tc.Close()
			return
		}
	}
	pk, err := readConnect(tc.Conn, l.maxConnect)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, packets.ErrPacketTooLarge):
			l.stats.oversizeConnect.Add(1)
		case errors.Is(err, errNotConnect):
			l.stats.notConnect.Add(1)
		case errors.As(err, &ne) && ne.Timeout():
			l.stats.connectTimeouts.Add(1)
		}
		tc.Close()
		return
	}
	tc.prefix = pk
	l.mu.Lock()
	if l.end.Load() {
		l.mu.Unlock()
		tc.Close()
		return
	}
	l.unread++
	l.mu.Unlock()
	// mochi creates the client on this goroutine, asking RemoteAddr once
	// it has read the write queue's size (queues.go).
	tc.release = l.sizing.lock(l.sizing.pending(pk))
	err = establish(l.id, tc)
	tc.release() // in case establish returned before asking
	if err != nil {
		l.mlog.Warn("", "error", err) // as mochi's listener: see quietHandler
	}
}

var errNotConnect = errors.New("first packet is not a CONNECT")

// readConnect reads one MQTT packet, fixed header included, refusing any
// other type than CONNECT and, before reading its body, any larger than
// max bytes.
func readConnect(r io.Reader, max int) ([]byte, error) {
	var b [5]byte // type and flags, then at most 4 bytes of length
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return nil, err
	}
	if b[0]>>4 != packets.Connect {
		return nil, errNotConnect
	}
	n, remaining := 1, 0
	for shift := 0; ; shift += 7 {
		if n == len(b) {
			return nil, packets.ErrMalformedVariableByteInteger
		}
		if _, err := io.ReadFull(r, b[n:n+1]); err != nil {
			return nil, err
		}
		remaining |= int(b[n]&0x7f) << shift
		n++
		if remaining > max { // also bounds the loop for a hostile length
			return nil, packets.ErrPacketTooLarge
		}
		if b[n-1]&0x80 == 0 {
			break
		}
	}
	if n+remaining > max {
		return nil, packets.ErrPacketTooLarge
	}
	p := make([]byte, n+remaining)
	copy(p, b[:n])
	if _, err := io.ReadFull(r, p[n:]); err != nil {
		return nil, err
	}
	return p, nil
}

// Close stops accepting and, as mochi's listener does, disconnects the
// listener's clients (the Server has already done so; see Server.Close).
func (l *listener) Close(closeClients listeners.CloseFn) {
	if !l.end.Swap(true) {
		closeClients(l.id)
	}
	l.shut()
}

// shut closes the net.Listener and ends the retry pauses.
func (l *listener) shut() {
	l.shutOne.Do(func() {
		close(l.closing)
		l.ln.Close()
	})
}

// awaitSetUp waits, up to d, until every connection handed to mochi has read.
func (l *listener) awaitSetUp(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		n := l.unread
		l.mu.Unlock()
		if n == 0 {
			return
		}
	}
}

func (l *listener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		// The socket itself: a TLS Close would first write its
		// close_notify, up to 5 s for a peer that does not read.
		c.raw.Close()
	}
}

// trackedConn leaves its listener's set when closed, and first gives back
// the CONNECT the listener read.
type trackedConn struct {
	net.Conn          // the TLS connection on the TLS listener
	raw      net.Conn // the socket
	l        *listener
	prefix   []byte // what handshake read, set before mochi has the connection
	release  func() // the sizing lock, set before mochi has the connection
	reading  atomic.Bool
	closed   atomic.Bool
	// ended is closed when mochi is done with the connection: its
	// establish returned, so the client's clean-up (subscriptions, entry
	// in the clients) has run (authHook.retire).
	ended chan struct{}
}

// Read passes through the listener's lock once, at the first read, which
// mochi does after setting the connection up: Close takes the same lock.
func (c *trackedConn) Read(b []byte) (int, error) {
	if !c.reading.Load() {
		c.unsize()
		c.l.mu.Lock()
		if !c.reading.Load() {
			c.reading.Store(true)
			c.l.unread--
		}
		c.l.mu.Unlock()
	}
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// RemoteAddr is what mochi asks as soon as it has created the client
// from the connection, having read its write queue's size: the sizing
// lock is released (queues.go).
func (c *trackedConn) RemoteAddr() net.Addr {
	c.unsize()
	return c.Conn.RemoteAddr()
}

func (c *trackedConn) unsize() {
	if c.release != nil {
		c.release()
	}
}

func (c *trackedConn) Close() error {
	if c.closed.Swap(true) {
		return c.Conn.Close()
	}
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	c.l.total.Add(-1)
	return c.Conn.Close()
}
