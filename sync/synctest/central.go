// Package synctest is the test kit of the central side, like periph's
// i2ctest: a Central (the embedded broker, the reference CMS on bbolt and
// the hub) started in-process on a free loopback port and stopped by
// t.Cleanup, an MQTT client (Dial) with a given user's credentials, and a
// log capture (Log) whose AssertNoPII fails a test when a log line
// carries a codice fiscale, a test card's holder's name or a PIN.
//
// Only tests import it (layers_test.go checks): it starts servers.
package synctest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
)

// HubUser is the broker username the Central's hub connects with: the
// deployed hub's, which deploy/mosquitto/acl names.
const HubUser = "totemhub"

// User is a broker user a Central creates: a totem, a console, a hub.
type User struct {
	Name, Role string
}

// Options change how Start builds the Central; the zero value is a broker
// on a free loopback port with in-memory users (the hub's only) and the
// reference CMS seeded with cms.DemoCards().
type Options struct {
	// Dir holds the registry, the CMS and the users' credentials files;
	// "" is a t.TempDir().
	Dir string
	// Logger receives the broker's and the hub's lines (subsystem
	// "broker", "ingest"); nil discards them.
	Logger *slog.Logger
	// Users are created with fresh credentials (Central.Creds). With
	// Registry they are provisioned in a bbolt fleet registry
	// (Dir/fleet.db, credentials in Dir/creds/<name>.json), as totemhub
	// does; otherwise they are the broker's in-memory users.
	Users    []User
	Registry bool
	// Auth, when set, wraps the broker's authenticator (to count or
	// refuse connections).
	Auth func(broker.Authenticator) broker.Authenticator
	// Broker is the broker's configuration; Listen "" is 127.0.0.1:0,
	// Auth and Logger are filled in.
	Broker broker.Options
	// NoBroker: the test runs a broker of its own (mosquitto) for the
	// users' credentials; StartHub then needs the URL.
	NoBroker bool
	// CMS is the reference CMS's configuration; nil seeds it with
	// cms.DemoCards().
	CMS *refcms.Options
}

// Central is the hub side of an installation, in the test's process.
type Central struct {
	t    testing.TB
	Dir  string
	log  *slog.Logger
	opts broker.Options

	Registry *broker.Registry // nil without Options.Registry
	Users    *broker.Users
	Broker   *broker.Server // nil while stopped (StopBroker)
	CMS      *refcms.Store
	// HubCreds are the credentials the hub connects with.
	HubCreds creds.File

	creds map[string]creds.File

	mu      sync.Mutex
	hubs    []*Hub // running, oldest first
	started int    // instances started, for their client ids
}

// Start starts the broker and opens the CMS; the hub starts with
// StartHub. Everything stops when the test ends.
func Start(t testing.TB, o Options) *Central {
	t.Helper()
	c := &Central{t: t, Dir: o.Dir, log: o.Logger, opts: o.Broker, creds: map[string]creds.File{}}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	if o.Registry {
		if c.Registry, err = broker.OpenRegistry(filepath.Join(c.Dir, "fleet.db")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Registry.Close() })
	}
	c.Users = broker.NewUsers(c.Registry)
	for _, u := range o.Users {
		c.AddUser(u)
	}
	if c.HubCreds, err = creds.Generate(HubUser, creds.RoleHub); err != nil {
		t.Fatal(err)
	}
	if err := c.Users.Add(c.HubCreds); err != nil {
		t.Fatal(err)
	}
	var auth broker.Authenticator = c.Users
	if o.Auth != nil {
		auth = o.Auth(auth)
	}
	c.opts.Auth, c.opts.Logger = auth, c.log.With("subsystem", "broker")
	if c.opts.Listen == "" {
		c.opts.Listen = "127.0.0.1:0"
	}
	cmsOpts := o.CMS
	if cmsOpts == nil {
		cmsOpts = &refcms.Options{Seed: cms.DemoCards()}
	}
	if c.CMS, err = refcms.Open(filepath.Join(c.Dir, "cms.db"), cmsOpts); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last in, first out: the hubs stop, then the broker,
	// then the CMS and the registry close.
	t.Cleanup(func() { c.CMS.Close() })
	if !o.NoBroker {
		c.StartBroker()
	}
	t.Cleanup(func() {
		c.StopHub()
		c.StopBroker()
	})
	return c
}

// AddUser creates a broker user with fresh credentials, provisioned in
// the registry when the Central has one.
func (c *Central) AddUser(u User) creds.File {
	c.t.Helper()
	var (
		f   creds.File
		err error
	)
	if c.Registry != nil {
		f, err = c.Registry.Provision(u.Name, u.Role, filepath.Join(c.Dir, "creds", u.Name+".json"))
	} else if f, err = creds.Generate(u.Name, u.Role); err == nil {
		err = c.Users.Add(f)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.creds[u.Name] = f
	c.mu.Unlock()
	return f
}

// Creds returns the credentials of a user of Options.Users or AddUser.
func (c *Central) Creds(name string) creds.File {
	c.t.Helper()
	c.mu.Lock()
	f, ok := c.creds[name]
	c.mu.Unlock()
	if !ok {
		c.t.Fatalf("synctest: no user %q", name)
	}
	return f
}

// URL is the broker's mqtt:// URL; it stays the same across StopBroker
// and StartBroker.
func (c *Central) URL() string { return "mqtt://" + c.Addr() }

// Addr is the broker's host:port.
func (c *Central) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts.Listen
}

// StartBroker starts the broker (again, after StopBroker, on the same
// address: the old listener's port may take a moment to free).
func (c *Central) StartBroker() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Broker != nil {
		return
	}
	for i := 0; ; i++ {
		srv, err := broker.Start(c.opts)
		if err == nil {
			c.Broker, c.opts.Listen = srv, srv.Addr()
			return
		}
		if i > 50 || c.opts.Listen == "127.0.0.1:0" {
			c.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StopBroker closes the broker; its address is kept for StartBroker, so
// clients pointed at URL find nothing listening until then.
func (c *Central) StopBroker() {
	c.mu.Lock()
	srv := c.Broker
	c.Broker = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Hub is one running hub instance of a Central.
type Hub struct {
	*hub.Hub
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
}

// Cancel cancels the instance's context without waiting, as a crash in
// the middle of its work would; Stop (or Central.StopHub) waits.
func (h *Hub) Cancel() { h.cancel() }

// Stop stops the instance and waits for it; Central.StopHub is the way
// for an instance it started.
func (h *Hub) Stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("hub: %v", err)
	}
}

// StartHub starts one more hub instance on the broker and waits until it
// is connected and subscribed; instances share the ingest through
// $share/totemhub. o's URL, ClientID (hub-1, hub-2… in start order), Username,
// Password, Backend (the CMS) and Logger are filled in where empty.
func (c *Central) StartHub(o hub.Options) *Hub {
	c.t.Helper()
	if o.URL == "" {
		o.URL = c.URL()
	}
	c.mu.Lock()
	c.started++
	n := c.started
	c.mu.Unlock()
	if o.ClientID == "" {
		// hub-1, hub-2…: never the id of an instance still running
		// (the broker would take the session over).
		o.ClientID = "hub-" + strconv.Itoa(n)
	}
	if o.Username == "" {
		o.Username, o.Password = c.HubCreds.Username, c.HubCreds.Password
	}
	if o.Backend == nil {
		o.Backend = c.CMS
	}
	if o.Logger == nil {
		o.Logger = c.log.With("subsystem", "ingest")
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{Hub: hub.New(o), t: c.t, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- h.Run(ctx) }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	if err := h.AwaitConnection(actx); err != nil {
		cancel()
		<-h.done
		c.t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the shared subscription follows the connection
	c.mu.Lock()
	c.hubs = append(c.hubs, h)
	c.mu.Unlock()
	// Stopped before whatever the test opened for it (an audit, a
	// fleet registry) is closed: cleanups run last in, first out.
	c.t.Cleanup(func() { c.StopHub(h) })
	return h
}

// Hubs are the running instances, oldest first.
func (c *Central) Hubs() []*Hub {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Hub(nil), c.hubs...)
}

// Hub is the instance started last, nil if none runs.
func (c *Central) Hub() *Hub {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.hubs) == 0 {
		return nil
	}
	return c.hubs[len(c.hubs)-1]
}

// StopHub stops one instance (every one with none named) and waits; an
// instance already stopped is left alone.
func (c *Central) StopHub(hs ...*Hub) {
	c.mu.Lock()
	var stop []*Hub
	if len(hs) == 0 {
		stop, c.hubs = c.hubs, nil
	}
	for _, h := range hs {
		for i, r := range c.hubs {
			if r == h {
				c.hubs = append(c.hubs[:i:i], c.hubs[i+1:]...)
				stop = append(stop, h)
				break
			}
		}
	}
	c.mu.Unlock()
	for _, h := range stop {
		h.Stop()
	}
}
