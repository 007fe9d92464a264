package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aslcns/totem/cms/bundle"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/hub/web"
	"github.com/aslcns/totem/sync/pki"
)

// webDeps are what the ops listener reads and acts on.
type webDeps struct {
	h      *hub.Hub
	store  *refcms.Store
	fleet  *hub.Fleet
	reg    *broker.Registry
	bstats func() broker.Stats // nil on an external broker, whose counters are its own
	bconns func() int
	url    string // the broker, for the console's link to the totems
	audit  *audit.Store
}

// startWeb starts the ops listener of [http] listen: health, readiness
// (the ingest connected to the broker, the store taking writes), the
// metrics and the ops console. It returns a stop that closes all of it.
func startWeb(ctx context.Context, cfg *config.Totemhub, log *slog.Logger, d webDeps) (func(), error) {
	cstats := new(web.ConsoleStats)
	src := web.Sources{Hub: d.h.Stats(), Queued: d.h.Queued, Broker: d.bstats, Connections: d.bconns, Fleet: d.fleet, Console: cstats}
	if cfg.Broker.Embedded {
		src.Credentials = d.reg.Credentials
		src.Enroll = d.h.EnrollStats // enrollment needs the embedded broker's registry
	}
	wlog := log.With("subsystem", "http")
	tlsCfg, renew, err := httpTLS(cfg, wlog)
	if err != nil {
		return nil, err
	}
	o := web.Options{Listen: cfg.HTTP.Listen, Registry: web.NewRegistry(src), Logger: wlog, Fleet: d.fleet, TLS: tlsCfg,
		Ready: []web.Check{
			{Name: "broker", Fn: d.h.AwaitConnection},
			{Name: "store", Fn: (&hub.StoreCheck{Ping: d.store.Ping}).Check},
		}}
	var link *consoleLink
	if host, _, _ := net.SplitHostPort(cfg.HTTP.Listen); tlsCfg != nil || config.Loopback(host) {
		if o.Console, link, err = consoleOf(ctx, cfg, d, wlog); err != nil {
			return nil, err
		}
		o.Console.Stats = cstats
	} else {
		wlog.Warn("ops console not served: plain HTTP off the loopback would carry passwords in clear; set [http] tls", "listen", cfg.HTTP.Listen)
	}
	ws, err := web.Start(o)
	if err != nil {
		if link != nil {
			link.Close()
		}
		return nil, err
	}
	rctx, stopRenew := context.WithCancel(ctx)
	go renew(rctx)
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	wlog.Info("ops listener", "url", scheme+"://"+ws.Addr()+"/", "metrics", scheme+"://"+ws.Addr()+"/metrics", "console", o.Console != nil)
	return func() {
		stopRenew()
		ws.Close()
		if link != nil {
			link.Close()
		}
	}, nil
}

// consoleOf wires the ops console: the accounts file, the reference CMS,
// the broker's registry and the link that carries signed actions.
func consoleOf(ctx context.Context, cfg *config.Totemhub, d webDeps, log *slog.Logger) (*web.Console, *consoleLink, error) {
	users, err := web.OpenUsers(filepath.Join(cfg.StateDir, web.UsersFile))
	if err != nil {
		return nil, nil, err
	}
	if list, _ := users.List(); len(list) == 0 {
		log.Warn("no ops console account: add one with `totemhub user add NAME --role ops`")
	}
	c := &web.Console{Users: users, Data: d.store, Audit: func(actor, action, detail string) {
		// The console's actions go to the central audit under the
		// account's name, prefixed so that they read apart from a
		// totem's operators and the consoles' keys.
		if _, err := d.audit.Append(audit.Entry{Source: audit.SourceHub, Actor: "web:" + actor, Action: action, Detail: detail}); err != nil {
			log.Error("console action not audited", "action", action, "err", err)
		}
	}}
	// The send log's receipt bundles (seed 003): the ZIP of cms/bundle
	// for the entry the hub's store holds.
	web.SetReceiptBundle(func(w io.Writer, n uint64) error {
		t, err := d.store.Transmission(n)
		if err != nil {
			return err
		}
		return bundle.Write(w, t)
	})
	if cfg.Broker.Embedded {
		c.Credentials = d.reg.Credentials
		c.Unlock = func(name string) (bool, error) {
			_, ok, err := d.reg.Unlock(name)
			return ok, err
		}
		c.Enroll = func(totem string) (string, time.Time, error) {
			return d.reg.Enroll(totem, cfg.Fleet.EnrollValidity.Duration, time.Now())
		}
	}
	link, key, err := startConsoleLink(ctx, cfg, d.url, nil, log)
	if err != nil {
		log.Warn("console actions disabled: the console's credentials or key are not readable", "err", err)
	} else if link != nil {
		c.Commands, c.Key = link, key
	}
	return c, link, nil
}

// httpTLS returns the listener's TLS configuration for [http] tls and the
// loop that keeps its certificate current; nil for plain HTTP.
func httpTLS(cfg *config.Totemhub, log *slog.Logger) (*tls.Config, func(context.Context), error) {
	var src pki.Source
	switch cfg.HTTP.TLS {
	case "":
		return nil, func(context.Context) {}, nil
	case "files":
		src = pki.FileSource(cfg.HTTP.CertFile, cfg.HTTP.KeyFile)
	default: // "hub"
		ca, err := pki.LoadOrCreateCA(cfg.StateDir, "Totem hub CA", time.Now())
		if err != nil {
			return nil, nil, fmt.Errorf("totemhub: %w", err)
		}
		dir := filepath.Join(cfg.StateDir, "http")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("totemhub: %w", err)
		}
		src = pki.CASource(dir, ca, cfg.Broker.TLSNames)
	}
	srv, err := pki.NewServer(src, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("totemhub: http certificate: %w", err)
	}
	return srv.Config(), func(ctx context.Context) { srv.Run(ctx, renewEvery, log) }, nil
}
