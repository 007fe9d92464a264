package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/stamp"
	"github.com/aslcns/totem/sync/uplink"
)

// openOutbox opens the durable outbox and the record of console commands
// executed, in state_dir.
func (d *wired) openOutbox() error {
	cfg := d.cfg
	// Personal data in the outbox is sealed with a key kept outside it.
	keys, err := outbox.LoadKeyring(filepath.Join(cfg.StateDir, "outbox.keys"))
	if err != nil {
		return err
	}
	d.keys = keys
	// Every operation carries the board's clocks (boot id, time since
	// boot, wall time, NTP-synchronised or not): data, never an order.
	d.clk = stamp.New(stamp.Options{})
	box, err := outbox.Open(filepath.Join(cfg.StateDir, "outbox.db"), outboxOptions(cfg, keys, d.clk.Stamp,
		func(u outbox.Usage) {
			if a := d.appRef.Load(); a != nil {
				a.OutboxAlarm(u)
			}
		}))
	if err != nil {
		return err
	}
	d.undo.Push(func() { box.Close() })
	d.box = box
	// Console commands: the record of executed command ids survives
	// restarts; expiry is judged on the wall clock only while NTP vouches
	// for it (see sync/cmdsig).
	rec, err := cmdsig.OpenRecord(filepath.Join(cfg.StateDir, "commands.db"), cmdsig.RecordOptions{
		Now: func() (time.Time, bool) { s := d.clk.Stamp(); return s.Wall, s.Synced }})
	if err != nil {
		return err
	}
	d.undo.Push(func() { rec.Close() })
	d.cmdRecord = rec
	return nil
}

// newApp makes the firmware's App on the devices: its live settings, its
// print queue, the maintenance gate, and its view of the link.
func (d *wired) newApp(ctx context.Context) error {
	cfg, log := d.cfg, d.log
	d.settings = liveSettings(d.fl.cfgPath, &d.loaded, d.level, &d.link, &d.verifier, d.box, &d.appRef, log.With("subsystem", "config"))
	// Receipts with the first halves of PIN and PUK wait for paper sealed
	// with the outbox's keyring, and go once printed.
	zone, err := time.LoadLocation(cfg.Totem.TimeZone) // checked by the config's Validate
	if err != nil {
		return fmt.Errorf("totemd: totem.time_zone: %w", err)
	}
	jobs, err := printq.Open(filepath.Join(cfg.StateDir, "jobs.db"), d.dev.Printer, printq.Options{
		Logger: log.With("subsystem", "printq"), OnStatus: func(err error) { d.app.PrinterStatus(err) },
		OnPaper: func(low bool) { d.app.PaperNearEnd(low) }, Keys: d.keys})
	if err != nil {
		return err
	}
	d.undo.Push(func() { jobs.Close() })
	if d.gate, err = maintGate(cfg, d.box, d.clk, log); err != nil {
		return err
	}
	fo := d.firmwareLinks(firmwareOptions(cfg))
	fo.Outbox, fo.Jobs, fo.Logger = d.box, jobs, log.With("subsystem", "firmware")
	fo.Settings, fo.Zone, fo.Maint = d.settings, zone, d.gate
	d.app = firmware.New(d.dev, fo)
	d.appRef.Store(d.app)
	if d.asb != nil {
		// Paper or cover trouble while nobody prints reaches telemetry too.
		if err := d.asb.EnableASB(ctx); err != nil {
			log.Warn("printer: automatic status back not enabled", "err", err)
		}
	}
	return nil
}

// firmwareLinks sets the App's options that reach the uplink and the
// verifier, which come with the credentials (nil until then).
func (d *wired) firmwareLinks(fo firmware.Options) firmware.Options {
	fo.CommandsRefused = func() map[string]uint64 {
		if v := d.verifier.Load(); v != nil {
			return v.Refused()
		}
		return nil
	}
	fo.Events = func(e protocol.Event) {
		if up := d.link.Load(); up != nil {
			up.Event(e)
		}
	}
	// Online-only operations (history, reprint…) are refused at once
	// when the hub is not reachable.
	fo.Online = func() bool {
		up := d.link.Load()
		return up != nil && up.Connected()
	}
	fo.Link = func() firmware.Link {
		if up := d.link.Load(); up != nil {
			return up
		}
		return nil
	}
	fo.Diag = func() firmware.Diagnostics { return diagnostics(d.cfg, d.link.Load(), d.clk) }
	fo.Enroll = func(ctx context.Context, code string) error { return enrollFromPanel(ctx, d.cfg, code) }
	fo.TestCredentials = func(ctx context.Context) string { return checkCredentials(ctx, d.link.Load()) }
	return fo
}

// startServices starts the loops: the panel's and the keyboard's, the
// session loop, the outbox's retention, the status line and the uplink.
func (d *wired) startServices(ctx context.Context) {
	cfg, log := d.cfg, d.log
	d.errc = make(chan error, 3)
	if d.tp != nil {
		d.start(func() error { return d.tp.Run(ctx) })
	}
	if d.runKeypad != nil {
		d.start(func() error { return d.runKeypad(ctx) })
	}
	if d.kbd != nil {
		klog := log.With("subsystem", "keyboard")
		d.start(func() error {
			return d.kbd.Run(ctx, func(msg string, err error) { klog.Info(msg, "device", cfg.Devices.Keyboard, "err", err) })
		})
	}
	d.start(func() error { return d.app.Run(ctx) })
	// Retention: settled operations leave the outbox after
	// outbox.retention (their summary stays in the hub's send log).
	plog := log.With("subsystem", "retention")
	d.start(func() error {
		d.box.RunPurge(ctx, time.Hour, cfg.Outbox.Retention.Duration, func() (time.Time, bool) { s := d.clk.Stamp(); return s.Wall, s.Synced },
			func(n int, err error) {
				if err != nil {
					plog.Error("outbox purge", "err", err)
				} else if n > 0 {
					plog.Info("outbox purged", "entries", n)
				}
			})
		return nil
	})
	if d.tp != nil {
		d.start(func() error { statusLine(ctx, d.tp, d.box, &d.link); return nil })
	}
	d.start(func() error { return d.runUplink(ctx) })
}

// runUplink waits for the credentials, then trusts the console keys in
// force, builds the uplink and runs it (and the updater on it).
func (d *wired) runUplink(ctx context.Context) error {
	cfg, log, app := d.cfg, d.log, d.app
	c, err := awaitCreds(ctx, cfg.Broker.CredentialsFile, log, &d.credsBeat)
	if err != nil {
		return nil // stopped before credentials appeared
	}
	// Read after the credentials: the demo hub writes its console's
	// key before them.
	// The keys in force: a remote change may have come first.
	cur := d.settings.Current()
	keys, err := cli.TrustedKeys(cur.ConsoleKeys, cur.ConsoleKeysFile)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		log.Warn("no console keys trusted: every remote command will be refused", "console_keys_file", cur.ConsoleKeysFile)
	}
	d.verifier.Store(cmdsig.NewVerifier(cfg.Totem.ID, keys, d.cmdRecord))
	d.gate.Trust(keys)
	// Read after the credentials too: the demo hub writes its CA
	// certificate before them.
	tlsCfg, caFile, err := cli.BrokerTLS(cfg.Broker.URL, cfg.Broker.TLSClient)
	if err != nil {
		return err
	}
	up := uplink.New(uplink.Options{
		Totem: cfg.Totem.ID, URL: cfg.Broker.URL, Username: c.Username, Password: c.Password,
		Store: &creds.Store{Path: cfg.Broker.CredentialsFile}, RotateAt: c.RotateAt, // rotates itself
		TLS: tlsCfg, CAFile: caFile,
		Outbox: d.box, Logger: log.With("subsystem", "uplink"),
		KeepAlive: cfg.Broker.KeepAlive.Duration, BackoffMin: cfg.Broker.ReconnectMin.Duration,
		BackoffMax: cfg.Broker.ReconnectMax.Duration, Version: version, Location: cfg.Totem.Location, ASL: cfg.Totem.ASL, Boot: d.clk.Boot(),
		Mono:      func() time.Duration { return time.Duration(d.clk.Stamp().Mono) * time.Millisecond },
		Telemetry: app.Telemetry, TelemetryInterval: cur.Sync.TelemetryInterval.Duration,
		OnResult: app.Result, OnPolicy: app.SetPolicy, OnCommand: app.Command, OnRefused: app.CommandRefused,
		OnTechnicians: func(b []byte) { adoptTechnicians(d.gate, b, log) },
		Verifier:      d.verifier.Load(), OnUpdate: d.upd.onUpdate(),
	})
	d.link.Store(up)
	d.upd.newLink(up, log.With("subsystem", "update"))
	d.start(func() error { return d.upd.run(ctx, up, log.With("subsystem", "update")) })
	// A broker's refusal does not end Run: it asks again later and
	// the status line says why; operations stay queued meanwhile.
	return up.Run(ctx)
}
