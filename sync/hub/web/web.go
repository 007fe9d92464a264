// Package web is totemhub's HTTP listener for ops: /healthz, /readyz,
// /metrics (Prometheus) over the hub's counters, the embedded broker's and
// the fleet registry, and under / the ops console (console.go): the fleet,
// each totem, the send log, the Reportistica, the FSE tickets, alerts and
// credentials, behind a login (argon2id password and TOTP, users.go;
// sessions and limits, session.go), with the technician actions signed in
// the user's role and every action audited. Without a console it serves a
// read-only fleet page on the loopback only (page.go).
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one condition of readiness: nil when it holds.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configure Serve.
type Options struct {
	Listen   string // host:port
	Registry *prometheus.Registry
	Ready    []Check // all must hold for /readyz to answer 200
	// Fleet, when set, is shown on the read-only fleet page under /,
	// served only on a loopback Listen (page.go).
	Fleet  *hub.Fleet
	Logger *slog.Logger
	// Console, when set (with Fleet), serves the ops console under /
	// behind a login, on any Listen, instead of the read-only page.
	Console *Console
	// TLS, when set, serves HTTPS (the console's cookies are then Secure).
	TLS *tls.Config
}

// Bounds of the server: a client that trickles its headers or never reads
// its answer is cut off instead of holding a goroutine and a socket.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 8 << 10
	checkTimeout      = 2 * time.Second
	maxInFlight       = 4 // concurrent scrapes; more are answered 503
)

// Server is a started listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error

	stop, watched chan struct{} // the console's alert watch
}

// alertEvery is how often the console evaluates the alerts when nobody
// looks: an alert that comes and goes between two page views is still in
// the recent list.
const alertEvery = 15 * time.Second

// Start listens on o.Listen and serves until Close.
func Start(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	o.Listen = ln.Addr().String() // what is bound decides the page, not what was asked
	if o.TLS != nil {
		ln = tls.NewListener(ln, o.TLS)
	}
	if o.Fleet != nil && o.Console == nil && !loopback(o.Listen) {
		o.Logger.Warn("fleet page not served: the listener is not on the loopback and ops accounts do not exist yet", "listen", o.Listen)
	}
	s := &Server{ln: ln, done: make(chan error, 1), stop: make(chan struct{}), watched: make(chan struct{})}
	var c *console
	if hasConsole(o) {
		c = newConsole(o)
		go c.watch(s.stop, s.watched, alertEvery)
	} else {
		close(s.watched)
	}
	s.srv = &http.Server{Handler: handler(o, c), ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address listened on (the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener and waits up to 5 s for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	close(s.stop)
	<-s.watched
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Handler is the listener's routes.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var c *console
	if hasConsole(o) {
		c = newConsole(o)
	}
	return handler(o, c)
}

func hasConsole(o Options) bool { return o.Console != nil && (o.Fleet != nil || o.Console.List != nil) }

// handler is the routes, with the console c when there is one.
func handler(o Options, c *console) http.Handler {
	mux := http.NewServeMux()
	switch {
	case c != nil:
		c.routes(mux)
	case o.Fleet != nil:
		mux.HandleFunc("GET /{$}", pageHandler(o))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		code, body := http.StatusOK, ""
		for _, c := range o.Ready {
			if err := c.Fn(ctx); err != nil {
				// The reason is the hub's own (a timeout, a bbolt error),
				// never a totem's input.
				code = http.StatusServiceUnavailable
				body += c.Name + ": " + err.Error() + "\n"
			} else {
				body += c.Name + ": ok\n"
			}
		}
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	})
	if o.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn), MaxRequestsInFlight: maxInFlight,
			Timeout: writeTimeout - time.Second}))
	}
	// Every state-changing request (POST) must come from the console's
	// own pages: the browser's Sec-Fetch-Site or Origin says so.
	return http.NewCrossOriginProtection().Handler(mux)
}

// newConsole prepares o.Console for serving.
func newConsole(o Options) *console {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &console{Console: *o.Console, log: o.Logger, secure: o.TLS != nil, alerts: newAlertBook()}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Refresh <= 0 {
		c.Refresh = 5 * time.Second
	}
	if c.List == nil {
		c.List = o.Fleet.List
	}
	if c.Events == nil {
		c.Events = func(string) []protocol.Event { return nil }
		if o.Fleet != nil {
			c.Events = o.Fleet.Events
		}
	}
	if c.Stats == nil {
		c.Stats = new(ConsoleStats)
	}
	c.g = newGuard(c.Now)
	c.slots = make(chan struct{}, maxHashing)
	return c
}
