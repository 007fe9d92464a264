package main

import (
	"context"
	"log/slog"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/hub/web"
)

// startWeb starts the ops listener of [http] listen: health, readiness
// (the ingest connected to the broker, the store taking writes) and the
// metrics. bstats and bconns are nil on an external broker, whose
// counters are its own; the credentials are the embedded broker's.
func startWeb(cfg *config.Totemhub, log *slog.Logger, h *hub.Hub, store *refcms.Store, fleet *hub.Fleet,
	reg *broker.Registry, bstats func() broker.Stats, bconns func() int) (*web.Server, error) {
	src := web.Sources{Hub: h.Stats(), Queued: h.Queued, Broker: bstats, Connections: bconns, Fleet: fleet}
	if cfg.Broker.Embedded {
		src.Credentials = reg.Credentials
	}
	wlog := log.With("subsystem", "http")
	ws, err := web.Start(web.Options{Listen: cfg.HTTP.Listen, Registry: web.NewRegistry(src), Logger: wlog, Fleet: fleet,
		Ready: []web.Check{
			{Name: "broker", Fn: h.AwaitConnection},
			{Name: "store", Fn: func(context.Context) error { return store.Writable() }},
		}})
	if err != nil {
		return nil, err
	}
	wlog.Info("ops listener", "url", "http://"+ws.Addr()+"/", "metrics", "http://"+ws.Addr()+"/metrics")
	return ws, nil
}
