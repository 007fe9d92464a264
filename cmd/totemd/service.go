package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/uplink"
)

// serve tells systemd that totemd is ready, pings its watchdog while the
// session loop and the uplink loop make progress, and reloads on SIGHUP.
// It is called once the outbox is open, the devices probed (degraded
// ones are fine: the app reports them) and the uplink's goroutine
// started: never waiting for the network, offline is normal.
//
// Before the credentials exist the uplink's loop is awaitCreds, which
// marks creds on each poll.
func serve(ctx context.Context, log *slog.Logger, level *slog.LevelVar, settings *firmware.Settings,
	app *firmware.App, link *atomic.Pointer[uplink.Uplink], creds *sdnotify.Beat) {
	sdnotify.OnReload(ctx, log, func() { reload(log, level, settings) })
	go sdnotify.Watchdog(ctx, log,
		sdnotify.Probe{Name: "session", Progress: app.Progress},
		sdnotify.Probe{Name: "uplink", Progress: func() time.Time {
			if up := link.Load(); up != nil {
				if p := up.Progress(); !p.IsZero() {
					return p
				}
			}
			return creds.Last()
		}})
	sdnotify.Ready(log)
	go func() {
		<-ctx.Done()
		sdnotify.Stopping(log)
	}()
}

// reload is what SIGHUP changes: the file read again and applied through
// the same function as a remote change (firmware.Settings): the log level
// and the telemetry interval live; the console keys, the broker, the
// devices and the rest are held by running parts (the verifier, the
// connection, open drivers) and change only with a restart, which the log
// names. A configuration that no longer loads changes nothing.
func reload(log *slog.Logger, level *slog.LevelVar, settings *firmware.Settings) {
	r, err := settings.Reload()
	switch {
	case errors.Is(err, firmware.ErrNoFile):
		log.Info("reload: running on the demo defaults (no --config), nothing to reload")
		return
	case err != nil:
		log.Error("reload: configuration not loaded, nothing changed", "err", err)
		return
	}
	log.Info("reload: log level applied", "level", level.Level())
	if len(r.Applied) > 0 {
		log.Info("reload: applied live", "settings", strings.Join(r.Applied, ","))
	}
	if len(r.Restart) > 0 {
		log.Warn("reload: these settings change only with a restart (systemctl restart totemd)", "settings", strings.Join(r.Restart, ","))
	}
}

// liveSettings is totemd's configuration file with what a remote change
// (config_set) or SIGHUP applies without a restart: the log level, the
// telemetry interval, the result wait and idle timeout, the outbox's alarm
// threshold and the trusted console keys. Every other key is written and
// waits for a restart, which the answer names. The parts a change
// reaches may not exist yet (the uplink and the verifier come with the
// credentials): they are built from Current when they come.
func liveSettings(path string, loaded *config.Totemd, level *slog.LevelVar, link *atomic.Pointer[uplink.Uplink],
	verifier *atomic.Pointer[cmdsig.Verifier], box *outbox.Outbox, app *atomic.Pointer[firmware.App], log *slog.Logger) *firmware.Settings {
	timeouts := func(c *config.Totemd) error {
		if a := app.Load(); a != nil {
			a.SetTimeouts(c.Sync.ResultWait.Duration, c.Session.IdleTimeout.Duration)
		}
		return nil
	}
	keys := func(c *config.Totemd) error {
		keys, err := cli.TrustedKeys(c.ConsoleKeys, c.ConsoleKeysFile)
		if err != nil {
			return err
		}
		if v := verifier.Load(); v != nil {
			v.SetKeys(keys)
		}
		return nil
	}
	return firmware.NewSettings(path, loaded, map[string]func(*config.Totemd) error{
		"log.level": func(c *config.Totemd) error { sdnotify.SetLevel(level, c.Log.Level); return nil },
		"sync.telemetry_interval": func(c *config.Totemd) error {
			if up := link.Load(); up != nil {
				up.SetTelemetryInterval(c.Sync.TelemetryInterval.Duration)
			}
			return nil
		},
		"sync.result_wait":     timeouts,
		"session.idle_timeout": timeouts,
		"outbox.alarm_at":      func(c *config.Totemd) error { return box.SetAlarmAt(c.Outbox.AlarmAt) },
		"console_keys":         keys,
		"console_keys_file":    keys,
	}, log)
}
