package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/update/rollout"
)

// startRollout opens the fleet jobs (state_dir/updates) and serves the
// totems' update requests and the consoles' uploads on a connection of
// its own (the hub's credentials, another client id). It returns the
// hub's Jobs hook and a stop that waits for the server.
func startRollout(ctx context.Context, cfg *config.Totemhub, url string, tlsCfg *tls.Config, me creds.File,
	keys []cmdsig.PublicKey, reg *broker.Registry, fleet *hub.Fleet, log *slog.Logger) (func(string, string, map[string]string) (json.RawMessage, error), func(), error) {
	send := rollout.NewMQTTSender()
	ro, err := rollout.Open(filepath.Join(cfg.StateDir, "updates"), send, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := rollout.Serve(ctx, ro, send, rollout.ServeOptions{URL: url, TLS: tlsCfg,
			ClientID: hubClientPrefix + "upd-" + cli.RandomID(4), Username: me.Username, Password: me.Password,
			Logger: log.With("subsystem", "rollout")}); err != nil {
			log.Error("rollout", "err", err)
		}
	}()
	jobs := func(console, name string, args map[string]string) (json.RawMessage, error) {
		return ro.Command(console, name, args, keys, rollout.Fleet{All: reg.Totems, InASL: fleet.InASL})
	}
	return jobs, func() { cancel(); wg.Wait(); ro.Close() }, nil
}
