// Package broker is the hub's embedded MQTT 5 broker (mochi-mqtt): a
// durable registry of the fleet's users in bbolt, an authentication and
// ACL hook that confines each role (totem, hub, console) to its part of
// the protocol topic tree, and a Server that ties them to a TCP listener.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/aslcns/totem/internal/lograte"
)

// DefaultMaxPacket is the default maximum MQTT packet size.
const DefaultMaxPacket = 256 << 10

// Defaults of the connection limits (Options).
const (
	// DefaultMaxConnections bounds the connections open at once, well
	// under a hub's descriptor limit, so the broker keeps descriptors for
	// its own files and the fleet's clients find one free.
	DefaultMaxConnections = 4096
	// DefaultConnectTimeout is how long a new connection may take to send
	// its CONNECT.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultMaxConnectPacket bounds a CONNECT, the only packet read
	// before authentication: the fleet's are under 1 KiB, Last Will
	// included.
	DefaultMaxConnectPacket = 4 << 10
)

// Options configure Start.
type Options struct {
	Listen    string        // plain host:port, e.g. "127.0.0.1:1883"; port 0 picks one (see Addr); "" = none
	Auth      Authenticator // required
	MaxPacket int           // maximum packet size in bytes; 0 means DefaultMaxPacket
	Logger    *slog.Logger  // nil discards

	// MaxConnections caps the connections open at once: one more is
	// accepted and closed at once. 0 means DefaultMaxConnections.
	MaxConnections int
	// ConnectTimeout: a connection that has not sent its CONNECT by then
	// is closed. 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxConnectPacket: a connection whose CONNECT announces more bytes
	// is closed before they are read. 0 means DefaultMaxConnectPacket.
	MaxConnectPacket int

	// TLSListen is the host:port of the TLS listener, "" = none; TLS
	// is its server configuration (certificate, minimum version),
	// required with TLSListen. The TLS handshake counts in the CONNECT
	// deadline, and both listeners share MaxConnections.
	TLSListen string
	TLS       *tls.Config

	// Enroll admits the enroll user (sync/enroll), whose ACL allows one
	// enrollment request and its reply, within EnrollPerSource connections
	// a minute per source address and EnrollGlobal overall (0: defaults).
	Enroll          bool
	EnrollPerSource int
	EnrollGlobal    int
}

// Server is a running broker.
type Server struct {
	mq      *mqtt.Server
	addr    string      // plain listener's, "" = none
	tlsAddr string      // TLS listener's, "" = none
	lns     []*listener // plain and TLS
	open    *atomic.Int64
	stats   *counters

	closeOnce sync.Once
}

// Start starts a broker; it is listening when Start returns.
func Start(opts Options) (*Server, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mq, stats, sz, err := newMochi(opts, log)
	if err != nil {
		return nil, err
	}
	s := &Server{mq: mq, stats: stats, open: new(atomic.Int64)}
	if err := s.listen(opts, log, sz); err != nil {
		s.closeListeners()
		return nil, err
	}
	if err := mq.Serve(); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return s, nil
}

// check refuses incoherent options and fills in the defaults.
func (opts *Options) check() error {
	if opts.Auth == nil {
		return errors.New("broker: no authenticator")
	}
	if opts.Listen == "" && opts.TLSListen == "" {
		return errors.New("broker: no listen address")
	}
	if opts.TLSListen != "" && opts.TLS == nil {
		return errors.New("broker: TLS listener without a TLS configuration")
	}
	if opts.MaxPacket < 0 || opts.MaxPacket > 256<<20 {
		return fmt.Errorf("broker: max packet %d out of range", opts.MaxPacket)
	}
	if opts.MaxPacket == 0 {
		opts.MaxPacket = DefaultMaxPacket
	}
	if opts.MaxConnections < 0 || opts.ConnectTimeout < 0 || opts.MaxConnectPacket < 0 {
		return errors.New("broker: negative connection limit")
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.MaxConnectPacket == 0 {
		opts.MaxConnectPacket = DefaultMaxConnectPacket
	}
	return nil
}

// newMochi builds the mochi server with its capabilities and the
// authentication hook, and the sizing of its clients' write queues.
func newMochi(opts Options, log *slog.Logger) (*mqtt.Server, *counters, *sizing, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(opts.MaxPacket)
	caps.MaximumSessionExpiryInterval = maxSessionExpiry
	quiet := &quietHandler{h: log.Handler()}
	// Each client's write queue is sized by its role: queues.go.
	sz := &sizing{caps: caps, auth: opts.Auth}
	// A client's store of QoS 1 messages sent and not yet acknowledged:
	// in a regional reconnect storm the hub's passes mochi's default of
	// 8 192 before its acknowledgements come back, and mochi then drops
	// what follows. The store is a map, filled only as used.
	caps.MaximumInflight = 65535
	mq := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(quiet),
		InlineClient: true, // the hub in this process: local.go
	})
	stats := new(counters)
	hook := &authHook{auth: opts.Auth, srv: mq, log: log, stats: stats, lim: &lograte.Limiter{Every: logEvery},
		roles: make(map[string]string), takeoverWait: min(maxTakeoverWait, opts.ConnectTimeout/2)}
	if opts.Enroll {
		hook.enroll = newEnrollGate(opts.EnrollPerSource, opts.EnrollGlobal)
	}
	quiet.redact = hook.redact
	if err := mq.AddHook(hook, nil); err != nil {
		return nil, nil, nil, fmt.Errorf("broker: %w", err)
	}
	return mq, stats, sz, nil
}

// listen opens the plain and TLS listeners opts names and adds them to
// the mochi server.
func (s *Server) listen(opts Options, log *slog.Logger, sz *sizing) error {
	for _, spec := range []struct {
		id, addr string
		tls      *tls.Config
	}{{"tcp", opts.Listen, nil}, {"tls", opts.TLSListen, opts.TLS}} {
		if spec.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", spec.addr)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		l := &listener{id: spec.id, ln: ln, tls: spec.tls, log: log, stats: s.stats, sizing: sz, total: s.open,
			maxConns: opts.MaxConnections, connectTimeout: opts.ConnectTimeout, maxConnect: opts.MaxConnectPacket,
			done: make(chan struct{}), closing: make(chan struct{}), conns: make(map[*trackedConn]struct{})}
		s.lns = append(s.lns, l)
		if spec.tls == nil {
			s.addr = ln.Addr().String()
		} else {
			s.tlsAddr = ln.Addr().String()
		}
		if err := s.mq.AddListener(l); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	return nil
}

// closeListeners closes the listeners opened so far (Start failed).
func (s *Server) closeListeners() {
	for _, l := range s.lns {
		l.ln.Close()
	}
}

// Stats returns the broker's counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// Connections returns the number of connections open, authenticated or
// not, on every listener.
func (s *Server) Connections() int { return int(s.open.Load()) }

// Addr returns the plain listener's bound host:port, "" without one.
func (s *Server) Addr() string { return s.addr }

// URL returns "mqtt://" + Addr().
func (s *Server) URL() string { return "mqtt://" + s.addr }

// TLSAddr returns the TLS listener's bound host:port, "" without one.
func (s *Server) TLSAddr() string { return s.tlsAddr }

// TLSURL returns "mqtts://" + TLSAddr().
func (s *Server) TLSURL() string { return "mqtts://" + s.tlsAddr }

// Close disconnects every client, stops listening and waits for the
// connections and the accept loop to end. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		// Orders Close after every connection that has started reading
		// (see trackedConn.Read): mochi's Close writes what a new
		// connection's setup reads, without a lock of its own.
		// No connection still in its CONNECT goes to mochi after this.
		for _, l := range s.lns {
			l.mu.Lock()
			l.end.Store(true)
			l.mu.Unlock()
		}
		// mochi's Close lists the clients under a read lock it takes
		// twice (Clients.GetByListener calls Len): a client coming or
		// going in between — its write lock waits for the first, the
		// second waits for it — deadlocks Close for ever (seen in a
		// test run). So none may: stop accepting, disconnect every
		// client, wait for them to be gone, and only then let mochi
		// close.
		for _, l := range s.lns {
			l.shut()
		}
		for _, l := range s.lns {
			select {
			case <-l.done:
			case <-time.After(5 * time.Second):
			}
		}
		for _, cl := range s.mq.Clients.GetAll() { // one read lock
			if !cl.Closed() {
				_ = s.mq.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		if !s.awaitNoClients(closeGrace) {
			// One that never completed its CONNECT is not among the
			// clients: end the connections themselves.
			s.closeConns()
			s.awaitNoClients(closeGrace)
		}
		s.closeConns() // connections still in their CONNECT
		// mochi's Close also writes, unsynchronised, what a new
		// connection's setup reads: wait until every connection
		// accepted has been set up (it then reads, and fails).
		for _, l := range s.lns {
			l.awaitSetUp(closeGrace)
		}
		closed := make(chan struct{})
		go func() {
			_ = s.mq.Close() // waits for every connection it accepted
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(closeGrace):
			s.closeConns()
			<-closed
		}
	})
	return nil
}

func (s *Server) closeConns() {
	for _, l := range s.lns {
		l.closeConns()
	}
}

// awaitNoClients waits, up to d, until no client is connected: each has
// left the clients mochi keeps if its session ends with the connection.
func (s *Server) awaitNoClients(d time.Duration) bool {
	for end := time.Now().Add(d); atomic.LoadInt64(&s.mq.Info.ClientsConnected) > 0; {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// maxTakeoverWait bounds how long a connection taking over a client id
// waits for the previous connection to end (authHook.retire); at most
// half the CONNECT deadline.
const maxTakeoverWait = 2 * time.Second

// closeGrace is how long Close lets clients disconnect before it closes
// the remaining connections itself.
const closeGrace = 2 * time.Second

// quietHandler adapts mochi's logging: only its warnings and errors pass,
// the unnamed warning its listener emits whenever a connection ends with an
// error is demoted to debug (except for oversized packets), and packet dumps (which would carry payloads,
// that is personal data) are dropped. So are two lines a client can have
// written at will, one per connection or publish: the low keep-alive
// warning (before authentication, with the client id it sent) and the
// error mochi logs for every publish the hook refuses (counted there).
// Client ids are redacted as the hook's own lines are.
type quietHandler struct {
	h      slog.Handler
	redact func(string) string // nil: none
}

func (q *quietHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn
}

func (q *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	msg := r.Message
	if msg == "" {
		level, msg = slog.LevelDebug, "connection ended"
		r.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && errors.Is(err, packets.ErrPacketTooLarge) {
				level, msg = slog.LevelWarn, "packet too large"
			}
			return true
		})
	}
	switch msg {
	case mqtt.ErrMinimumKeepalive.Error(), "publish packet error":
		level = slog.LevelDebug
	}
	if !q.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "pk", "packet", "payload", "will":
		case "client":
			if q.redact != nil {
				a.Value = slog.StringValue(q.redact(a.Value.String()))
			}
			out.AddAttrs(a)
		default:
			out.AddAttrs(a)
		}
		return true
	})
	return q.h.Handle(ctx, out)
}

func (q *quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &quietHandler{h: q.h.WithAttrs(as), redact: q.redact}
}

func (q *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{h: q.h.WithGroup(name), redact: q.redact}
}
