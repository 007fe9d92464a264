package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/config"
)

// serve tells systemd that totemhub is ready (the broker listens, the
// ingest is starting) and reloads on SIGHUP; totemhub.service has no
// watchdog.
func serve(ctx context.Context, log *slog.Logger, level *slog.LevelVar, cfgPath string, loaded *config.Totemhub) {
	sdnotify.OnReload(ctx, log, func() { reload(log, level, cfgPath, loaded) })
	sdnotify.Ready(log)
	go func() {
		<-ctx.Done()
		sdnotify.Stopping(log)
	}()
}

// reload is what SIGHUP changes: the log level. The broker, the console
// keys (held by the running verifier), the fleet and the CMS change only
// with a restart; the log names the settings that changed and wait for
// one. A configuration that no longer loads changes nothing.
func reload(log *slog.Logger, level *slog.LevelVar, cfgPath string, loaded *config.Totemhub) {
	cfg, err := config.LoadTotemhub(cfgPath)
	if err != nil {
		log.Error("reload: configuration not loaded, nothing changed", "err", err)
		return
	}
	sdnotify.SetLevel(level, cfg.Log.Level)
	log.Info("reload: log level applied", "level", level.Level())
	if changed := sdnotify.Changed(loaded, cfg, "log.level"); len(changed) > 0 {
		log.Warn("reload: these settings change only with a restart (systemctl restart totemhub)", "settings", strings.Join(changed, ","))
	}
}
