// Command totemd is the service of a self-service health totem: it drives
// the card reader, the receipt printer, the keypad and the display, runs the
// citizen's sessions, keeps every operation in the durable outbox and
// synchronises it with the hub over MQTT.
//
//	totemd [--config FILE] [--panel auto|terminal|none|hardware] [--vcard PROFILE] [--vprinter DIR] [--vspeech DIR]
//	totemd card info|watch|sim …       read the card, watch the reader, run a virtual card
//	totemd printer test|status|sim …   test print, printer status, run a virtual printer
//
// With a terminal on stdin (and panel "auto" or "terminal") the display and
// keypad are drawn in the terminal and logs go to state_dir/totemd.log;
// without one (stdin closed, as under systemd) it runs headless on its
// simulated devices and logs to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // totem.time_zone on a board without /usr/share/zoneinfo

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/drivers/escpos"
	"github.com/aslcns/totem/drivers/evdev"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/drivers/speech"
	"github.com/aslcns/totem/drivers/term"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/clock"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/uplink"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { cli.Main(run) }

// demoCards are the simulated cards --cards names.
var demoCards = map[string]func() *sim.Card{
	"demo": sim.DemoCard, "cns": sim.DemoCard, "operator": sim.OperatorCard, "minor": sim.MinorCard, "issued": sim.IssuedCard,
}

// firmwareOptions are the App's options the configuration gives: the
// totem, the language, the timeouts and the receipt link.
func firmwareOptions(cfg *config.Totemd) firmware.Options {
	return firmware.Options{
		Totem: cfg.Totem.ID, ASL: cfg.Totem.ASL, Location: cfg.Totem.Location, Town: cfg.Totem.Town,
		Lang: firmware.ParseLang(cfg.Session.Lang), ReissueCounter: cfg.Totem.ReissueCounter,
		ResultWait: cfg.Sync.ResultWait.Duration, IdleTimeout: cfg.Session.IdleTimeout.Duration,
		OperatorTimeout: cfg.Session.OperatorIdleTimeout.Duration, QueuedTTL: cfg.Sync.QueuedTTL.Duration,
		IdleWarning: cfg.Session.IdleWarning.Duration, MaintIdle: cfg.Session.MaintenanceIdle.Duration,
		ReceiptLink: cfg.Totem.ReceiptLink, Audit: true, Version: version,
	}
}

// panels are the values of --panel (and devices.panel).
var panels = []string{"auto", "terminal", "none", "hardware"}

// checkPanelFlag refuses a --panel that is none of panels ("" keeps the
// configuration's): a typo used to start the daemon on the configured panel.
func checkPanelFlag(v string) error {
	if v == "" || slices.Contains(panels, v) {
		return nil
	}
	return fmt.Errorf("totemd: --panel %q: want one of %s", v, strings.Join(panels, ", "))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("totemd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if len(args) > 0 {
		switch args[0] {
		case "card":
			return cardCmd(ctx, args[1:], stdout, stderr)
		case "printer":
			return printerCmd(ctx, args[1:], stdout, stderr)
		case "enroll":
			return enrollCmd(ctx, args[1:], stdout, stderr)
		case "credentials":
			return credentialsCmd(ctx, args[1:], stdout, stderr)
		case "version":
			fmt.Fprintf(stdout, "totemd %s (pcsc: %v)\n", version, pcsc.Available)
			return nil
		case "update-apply":
			return updateApplyCmd(ctx, args[1:], stderr)
		}
	}
	cfgPath := fs.String("config", "", "configuration file (default: embedded defaults)")
	panel := fs.String("panel", "", "auto, terminal, none or hardware (overrides devices.panel)")
	vcardName := fs.String("vcard", "", "demo: read cards through pcscd, with this virtual card (vpcd) inserted and removed by the panel's i/r keys; a comma-separated list takes turns (operator,minor: assisted mode)")
	simCards := fs.String("cards", "demo", "demo: the simulated cards the panel's i key inserts in turn: demo, operator, minor, issued (operator,issued,minor: assisted mode)")
	vprintDir := fs.String("vprinter", "", "demo: print through the ESC/POS driver to a virtual printer that writes receipts (text and PNG) to this directory")
	vspeechDir := fs.String("vspeech", "", "demo: speak through espeak-ng into WAV files in this directory instead of the sound card")
	vpcdAddr := fs.String("vpcd", vcard.DefaultAddr, "demo: the vpcd reader (host:port) the --vcard cards connect to, e.g. a private pcscd's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkPanelFlag(*panel); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("totemd: unknown command %q (card, printer, enroll, credentials, version)", fs.Arg(0))
	}
	// The demo's cards take turns in the slot: i inserts one, r removes
	// it and the next i inserts the next.
	var vcs []*vcard.Card
	if *vcardName != "" {
		for _, name := range strings.Split(*vcardName, ",") {
			p, ok := vcard.Lookup(name)
			if !ok {
				return fmt.Errorf("totemd: --vcard %s: no such profile (totemd card sim --list)", name)
			}
			vc := vcard.New(p)
			vc.SetAddr(*vpcdAddr)
			defer vc.Remove()
			vcs = append(vcs, vc)
		}
	}
	var sims []*sim.Card
	for _, name := range strings.Split(*simCards, ",") {
		c, ok := demoCards[name]
		if !ok {
			return fmt.Errorf("totemd: --cards %s: no such card (demo or cns, operator, minor, issued)", name)
		}
		sims = append(sims, c())
	}
	turn := 0
	cfg, err := config.LoadTotemd(*cfgPath)
	if err != nil {
		return err
	}
	loaded := *cfg // as in the file: what a reload compares with
	if *panel != "" {
		cfg.Devices.Panel = *panel
	}
	if vcs != nil {
		cfg.Devices.Reader = "pcsc"
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("totemd: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	reader := sim.NewReader("sim-0")
	printer := sim.NewPrinter(cfg.Devices.ReceiptDir)
	dev := firmware.Devices{Reader: reader, Printer: printer}
	var appRef atomic.Pointer[firmware.App] // the printer tells the app what it reports by itself
	var asb *escpos.Printer
	if cfg.Devices.Printer == "escpos" || *vprintDir != "" {
		p, closePrinter, err := escposPrinter(cfg, *vprintDir, func(s hal.PrinterStatus) {
			if a := appRef.Load(); a != nil {
				a.PrinterStatus(s.Err())
			}
		})
		if err != nil {
			return err
		}
		defer closePrinter()
		dev.Printer = p
		if p.Profile().ASB {
			asb = p
		}
	}
	if cfg.Devices.Reader == "pcsc" {
		r, err := pcsc.Open(ctx, pcsc.Options{Reader: cfg.Devices.PCSC.Reader})
		if err != nil {
			return fmt.Errorf("totemd: reader = pcsc: %w", err)
		}
		defer r.Close()
		dev.Reader = r
	}

	tty, _ := stdin.(*os.File)
	useTerm := cfg.Devices.Panel == "terminal" || cfg.Devices.Panel == "auto" && tty != nil && isTerminal(tty)
	logw := stderr
	var tp *term.Panel
	if useTerm {
		if tty == nil {
			return errors.New("totemd: panel = terminal needs a terminal on stdin")
		}
		restore, err := term.Raw(tty)
		if err != nil {
			return fmt.Errorf("totemd: panel = terminal: %w", err)
		}
		defer restore()
		logPath := filepath.Join(cfg.StateDir, "totemd.log")
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("totemd: %w", err)
		}
		defer f.Close()
		logw = f
		tp = term.New(tty, stdout, term.Options{
			Title: "Totem " + cfg.Totem.ID + " · " + cfg.Totem.ASL,
			OnCard: func(in bool) {
				switch {
				case vcs != nil && in:
					if err := vcs[turn%len(vcs)].Insert(ctx); err != nil {
						tp.Status("Carta virtuale: " + err.Error())
					}
				case vcs != nil:
					vcs[turn%len(vcs)].Remove()
					turn++
				case in:
					reader.Insert(sims[turn%len(sims)])
				default:
					if reader.Present() {
						turn++
					}
					reader.Remove()
				}
			},
			OnQuit: cancel,
			Help:   "0-9 A-D * #  Invio=#  Esc=D  i=inserisci r=rimuovi tessera  q=esci",
		})
		dev.Keypad, dev.Display = tp, tp
	} else if cfg.Devices.Panel != "hardware" {
		p := sim.NewPanel(20, 4)
		dev.Keypad, dev.Display = p, p
	}
	logger, level := sdnotify.Logger(logw, cfg.Log.Level, cfg.Log.Format) // a reload sets level
	log := logger.With("totem", cfg.Totem.ID)
	var runKeypad func(context.Context) error
	if cfg.Devices.Panel == "hardware" {
		kp, disp, closeBus, err := hardwarePanel(cfg)
		if err != nil {
			return err
		}
		defer closeBus()
		dev.Keypad, dev.Display, runKeypad = kp, disp, kp.Run
	}

	if cfg.Devices.Speaker.Kind == "espeak" {
		spk, err := speech.New(speech.Options{Dir: *vspeechDir, Rate: cfg.Devices.Speaker.Rate})
		if err != nil {
			// The totem still serves; a technician is told.
			log.Error("no speech output", "err", err)
		} else {
			defer spk.Close()
			dev.Speaker = spk
		}
	}

	var kbd *evdev.Keyboard
	if cfg.Devices.Keyboard != "" {
		kbd = evdev.New(cfg.Devices.Keyboard, evdev.Layouts[cfg.Devices.KeyboardLayout])
		dev.Keyboard = kbd
	}

	dev = testHook(dev)
	dev, upd := gateDevices(cfg, dev)

	// Personal data in the outbox is sealed with a key kept outside it.
	keys, err := outbox.LoadKeyring(filepath.Join(cfg.StateDir, "outbox.keys"))
	if err != nil {
		return err
	}
	// Every operation carries the board's clocks (boot id, time since
	// boot, wall time, NTP-synchronised or not): data, never an order.
	clk := clock.New(clock.Options{})
	box, err := outbox.Open(filepath.Join(cfg.StateDir, "outbox.db"), outboxOptions(cfg, keys, clk.Stamp,
		func(u outbox.Usage) {
			if a := appRef.Load(); a != nil {
				a.OutboxAlarm(u)
			}
		}))
	if err != nil {
		return err
	}
	defer box.Close()

	// Console commands: the record of executed command ids survives
	// restarts; expiry is judged on the wall clock only while NTP vouches
	// for it (see sync/cmdsig).
	cmdRecord, err := cmdsig.OpenRecord(filepath.Join(cfg.StateDir, "commands.db"), cmdsig.RecordOptions{
		Now: func() (time.Time, bool) { s := clk.Stamp(); return s.Wall, s.Synced }})
	if err != nil {
		return err
	}
	defer cmdRecord.Close()

	var link atomic.Pointer[uplink.Uplink] // set once the credentials are there
	var verifier atomic.Pointer[cmdsig.Verifier]
	settings := liveSettings(*cfgPath, &loaded, level, &link, &verifier, box, &appRef, log.With("subsystem", "config"))
	var app *firmware.App
	// Receipts with the first halves of PIN and PUK wait for paper sealed
	// with the outbox's keyring, and go once printed.
	zone, err := time.LoadLocation(cfg.Totem.TimeZone) // checked by the config's Validate
	if err != nil {
		return fmt.Errorf("totemd: totem.time_zone: %w", err)
	}
	jobs, err := printq.Open(filepath.Join(cfg.StateDir, "jobs.db"), dev.Printer, printq.Options{
		Logger: log.With("subsystem", "printq"), OnStatus: func(err error) { app.PrinterStatus(err) },
		OnPaper: func(low bool) { app.PaperNearEnd(low) }, Keys: keys})
	if err != nil {
		return err
	}
	defer jobs.Close()
	gate, err := maintGate(cfg, box, clk, log)
	if err != nil {
		return err
	}
	fo := firmwareOptions(cfg)
	fo.Outbox, fo.Jobs, fo.Logger = box, jobs, log.With("subsystem", "firmware")
	fo.Settings, fo.Zone, fo.Maint = settings, zone, gate
	fo.CommandsRefused = func() map[string]uint64 {
		if v := verifier.Load(); v != nil {
			return v.Refused()
		}
		return nil
	}
	fo.Events = func(e protocol.Event) {
		if up := link.Load(); up != nil {
			up.Event(e)
		}
	}
	// Online-only operations (history, reprint…) are refused at once
	// when the hub is not reachable.
	fo.Online = func() bool {
		up := link.Load()
		return up != nil && up.Connected()
	}
	fo.Link = func() firmware.Link {
		if up := link.Load(); up != nil {
			return up
		}
		return nil
	}
	fo.Diag = func() firmware.Diagnostics { return diagnostics(cfg, link.Load(), clk) }
	fo.Enroll = func(ctx context.Context, code string) error { return enrollFromPanel(ctx, cfg, code) }
	fo.TestCredentials = func(ctx context.Context) string { return checkCredentials(ctx, link.Load()) }
	app = firmware.New(dev, fo)
	appRef.Store(app)
	if asb != nil {
		// Paper or cover trouble while nobody prints reaches telemetry too.
		if err := asb.EnableASB(ctx); err != nil {
			log.Warn("printer: automatic status back not enabled", "err", err)
		}
	}
	var credsBeat sdnotify.Beat // awaitCreds's progress, for the watchdog
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	start := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- err
			}
		}()
	}
	if tp != nil {
		start(func() error { return tp.Run(ctx) })
	}
	if runKeypad != nil {
		start(func() error { return runKeypad(ctx) })
	}
	if kbd != nil {
		klog := log.With("subsystem", "keyboard")
		start(func() error {
			return kbd.Run(ctx, func(msg string, err error) { klog.Info(msg, "device", cfg.Devices.Keyboard, "err", err) })
		})
	}
	start(func() error { return app.Run(ctx) })
	// Retention: settled operations leave the outbox after
	// outbox.retention (their summary stays in the hub's send log).
	plog := log.With("subsystem", "retention")
	start(func() error {
		box.RunPurge(ctx, time.Hour, cfg.Outbox.Retention.Duration, func() (time.Time, bool) { s := clk.Stamp(); return s.Wall, s.Synced },
			func(n int, err error) {
				if err != nil {
					plog.Error("outbox purge", "err", err)
				} else if n > 0 {
					plog.Info("outbox purged", "entries", n)
				}
			})
		return nil
	})
	if tp != nil {
		start(func() error { statusLine(ctx, tp, box, &link); return nil })
	}
	start(func() error {
		c, err := awaitCreds(ctx, cfg.Broker.CredentialsFile, log, &credsBeat)
		if err != nil {
			return nil // stopped before credentials appeared
		}
		// Read after the credentials: the demo hub writes its console's
		// key before them.
		// The keys in force: a remote change may have come first.
		cur := settings.Current()
		keys, err := cli.TrustedKeys(cur.ConsoleKeys, cur.ConsoleKeysFile)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			log.Warn("no console keys trusted: every remote command will be refused", "console_keys_file", cur.ConsoleKeysFile)
		}
		verifier.Store(cmdsig.NewVerifier(cfg.Totem.ID, keys, cmdRecord))
		gate.Trust(keys)
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
			Outbox: box, Logger: log.With("subsystem", "uplink"),
			KeepAlive: cfg.Broker.KeepAlive.Duration, BackoffMin: cfg.Broker.ReconnectMin.Duration,
			BackoffMax: cfg.Broker.ReconnectMax.Duration, Version: version, Location: cfg.Totem.Location, ASL: cfg.Totem.ASL, Boot: clk.Boot(),
			Mono:      func() time.Duration { return time.Duration(clk.Stamp().Mono) * time.Millisecond },
			Telemetry: app.Telemetry, TelemetryInterval: cur.Sync.TelemetryInterval.Duration,
			OnResult: app.Result, OnPolicy: app.SetPolicy, OnCommand: app.Command, OnRefused: app.CommandRefused,
			OnTechnicians: func(b []byte) { adoptTechnicians(gate, b, log) },
			Verifier:      verifier.Load(), OnUpdate: upd.onUpdate(),
		})
		link.Store(up)
		upd.newLink(up, log.With("subsystem", "update"))
		start(func() error { return upd.run(ctx, up, log.With("subsystem", "update")) })
		// A broker's refusal does not end Run: it asks again later and
		// the status line says why; operations stay queued meanwhile.
		return up.Run(ctx)
	})
	log.Info("totemd running", "version", version, "state_dir", cfg.StateDir, "panel", useTerm)
	serve(ctx, log, level, settings, app, &link, &credsBeat)
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		cancel()
	}
	wg.Wait()
	return first
}

// outboxOptions are the outbox's options from the configuration: its
// quotas and priority classes, the alarm, the keys and the clock stamps.
func outboxOptions(cfg *config.Totemd, keys *outbox.Keyring, stamp func() protocol.Stamp, alarm func(outbox.Usage)) *outbox.Options {
	classes := make(map[string]outbox.Class)
	for _, k := range cfg.Outbox.TelemetryKinds {
		classes[k] = outbox.ClassTelemetry
	}
	classes[cms.KindAudit] = outbox.ClassAudit // the hub's audit (firmware.RecordAudit): never shed
	for _, k := range cfg.Outbox.AuditKinds {
		classes[k] = outbox.ClassAudit
	}
	return &outbox.Options{MaxSize: cfg.Outbox.MaxSizeMB << 20, MaxPending: cfg.Outbox.MaxPending,
		AlarmAt: cfg.Outbox.AlarmAt, OnAlarm: alarm, Classes: classes, Keys: keys, Stamp: stamp}
}

// awaitCreds loads the totem's credentials, waiting for them. A missing
// file is the expected wait for enrollment (the demo's hub writes it at
// start; a technician copies it in) and is said so. A file that is there
// but unusable — unreadable, malformed, readable by others — is an error
// naming the file and what is wrong (never its content), said again
// whenever that changes. Either way the totem keeps serving offline, its
// operations queued, and takes the file as soon as it is right. It marks
// beat on each poll, for the watchdog.
func awaitCreds(ctx context.Context, path string, log *slog.Logger, beat *sdnotify.Beat) (creds.File, error) {
	last := ""
	for {
		beat.Mark()
		c, err := creds.Load(path)
		if err == nil {
			if last != "" {
				log.Info("credentials loaded", "file", path)
			}
			return c, nil
		}
		if err.Error() != last {
			last = err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				log.Warn("no credentials file yet: waiting for this totem's enrollment (totemd enroll CODE, or provision it at the hub); operations stay queued",
					"file", path)
			} else {
				log.Error("credentials file unusable: fix or replace it; operations stay queued", "file", path, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return creds.File{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// linkState is the link to the hub in words: in line, off line, or
// refused by the broker with the reason code and its meaning, so whoever
// looks at the panel knows whether to wait or to call ops.
func linkState(up interface {
	Connected() bool
	Refused() (protocol.Refusal, bool)
}) string {
	if up.Connected() {
		return "in linea"
	}
	if r, ok := up.Refused(); ok {
		if r.Code == 0x8A { // locked: the totem no longer asks (sync/uplink)
			return "credenziali bloccate (0x8A): chiedere a ops lo sblocco o riattivare il totem"
		}
		return fmt.Sprintf("rifiutato (0x%02X %s), nuovo tentativo più tardi", r.Code, r.Reason)
	}
	return "fuori linea"
}

// statusLine keeps the line under the terminal panel up to date with the
// link to the hub and the outbox, for whoever is watching the demo.
func statusLine(ctx context.Context, tp *term.Panel, box *outbox.Outbox, link *atomic.Pointer[uplink.Uplink]) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := ""
	for {
		state := "in attesa delle credenziali"
		if up := link.Load(); up != nil {
			state = linkState(up)
		}
		s := "Hub: " + state
		if q, err := box.Stats(); err == nil {
			s += fmt.Sprintf(" · operazioni da inviare: %d", q.Depth)
		}
		if s != last {
			tp.Status(s)
			last = s
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
