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
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
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
	"github.com/aslcns/totem/drivers/term"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/maint"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/stamp"
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

// subcommands are totemd's words other than serving: each takes the
// arguments after its name.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"card":        cardCmd,
	"printer":     printerCmd,
	"enroll":      enrollCmd,
	"credentials": credentialsCmd,
	"version": func(_ context.Context, _ []string, stdout, _ io.Writer) error {
		fmt.Fprintf(stdout, "totemd %s (pcsc: %v)\n", version, pcsc.Available)
		return nil
	},
	"update-apply": func(ctx context.Context, args []string, _, stderr io.Writer) error {
		return updateApplyCmd(ctx, args, stderr)
	},
}

// run serves (or runs a subcommand): it wires the daemon step by step,
// each step undone in reverse order when run returns, and waits.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			return sub(ctx, args[1:], stdout, stderr)
		}
	}
	fl, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	d := &wired{fl: fl}
	defer d.undo.Run()
	if err := d.demoCards(); err != nil {
		return err
	}
	if err := d.loadConfig(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	d.undo.Push(cancel)
	if err := d.openDevices(ctx, stdin, stdout, stderr); err != nil {
		return err
	}
	if err := d.openOutbox(); err != nil {
		return err
	}
	if err := d.newApp(ctx); err != nil {
		return err
	}
	d.startServices(ctx)
	return d.wait(ctx)
}

// flags are the command line of the daemon.
type flags struct {
	cfgPath, panel, vcard, cards, vprinter, vspeech, vpcd string
}

// parseFlags reads the daemon's command line.
func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := cli.Flags("totemd", stderr)
	fs.StringVar(&f.cfgPath, "config", "", "configuration file (default: embedded defaults)")
	fs.StringVar(&f.panel, "panel", "", "auto, terminal, none or hardware (overrides devices.panel)")
	fs.StringVar(&f.vcard, "vcard", "", "demo: read cards through pcscd, with this virtual card (vpcd) inserted and removed by the panel's i/r keys; a comma-separated list takes turns (operator,minor: assisted mode)")
	fs.StringVar(&f.cards, "cards", "demo", "demo: the simulated cards the panel's i key inserts in turn: demo, operator, minor, issued (operator,issued,minor: assisted mode)")
	fs.StringVar(&f.vprinter, "vprinter", "", "demo: print through the ESC/POS driver to a virtual printer that writes receipts (text and PNG) to this directory")
	fs.StringVar(&f.vspeech, "vspeech", "", "demo: speak through espeak-ng into WAV files in this directory instead of the sound card")
	fs.StringVar(&f.vpcd, "vpcd", vcard.DefaultAddr, "demo: the vpcd reader (host:port) the --vcard cards connect to, e.g. a private pcscd's")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := checkPanelFlag(f.panel); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("totemd: unknown command %q (card, printer, enroll, credentials, version)", fs.Arg(0))
	}
	return &f, nil
}

// wired is the daemon run wires: each step sets its part and pushes
// what undoes it on undo.
type wired struct {
	fl     *flags
	undo   cli.Undo // what each step opened, closed when run returns
	cancel context.CancelFunc

	cfg    *config.Totemd
	loaded config.Totemd // as in the file: what a reload compares with

	demo      demoSlot
	reader    *sim.Reader // the simulated reader, when the panel inserts cards
	dev       firmware.Devices
	asb       *escpos.Printer // a printer that reports by itself (ASB)
	tp        *term.Panel
	useTerm   bool
	runKeypad func(context.Context) error
	kbd       *evdev.Keyboard
	upd       *updater

	log   *slog.Logger
	level *slog.LevelVar // a reload sets it

	clk       *stamp.Source
	keys      *outbox.Keyring
	box       *outbox.Outbox
	cmdRecord *cmdsig.Record
	settings  *firmware.Settings
	gate      *maint.Gate
	app       *firmware.App
	appRef    atomic.Pointer[firmware.App]    // the printer and the outbox tell the app what they report by themselves
	link      atomic.Pointer[uplink.Uplink]   // set once the credentials are there
	verifier  atomic.Pointer[cmdsig.Verifier] // likewise
	credsBeat sdnotify.Beat                   // awaitCreds's progress, for the watchdog

	wg   sync.WaitGroup
	errc chan error
}

// demoSlot is the demo's card slot: the cards take turns, i inserts one,
// r removes it and the next i inserts the next.
type demoSlot struct {
	vcs  []*vcard.Card
	sims []*sim.Card
	turn int
}

// demoCards makes the cards of --vcard and --cards.
func (d *wired) demoCards() error {
	if d.fl.vcard != "" {
		for _, name := range strings.Split(d.fl.vcard, ",") {
			p, ok := vcard.Lookup(name)
			if !ok {
				return fmt.Errorf("totemd: --vcard %s: no such profile (totemd card sim --list)", name)
			}
			vc := vcard.New(p)
			vc.SetAddr(d.fl.vpcd)
			d.undo.Push(vc.Remove)
			d.demo.vcs = append(d.demo.vcs, vc)
		}
	}
	for _, name := range strings.Split(d.fl.cards, ",") {
		c, ok := demoCards[name]
		if !ok {
			return fmt.Errorf("totemd: --cards %s: no such card (demo or cns, operator, minor, issued)", name)
		}
		d.demo.sims = append(d.demo.sims, c())
	}
	return nil
}

// loadConfig loads the configuration, applies the flags that override it
// and makes the state directory.
func (d *wired) loadConfig() error {
	cfg, err := config.LoadTotemd(d.fl.cfgPath)
	if err != nil {
		return err
	}
	d.cfg, d.loaded = cfg, *cfg
	if d.fl.panel != "" {
		cfg.Devices.Panel = d.fl.panel
	}
	if d.demo.vcs != nil {
		cfg.Devices.Reader = "pcsc"
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("totemd: %w", err)
	}
	return nil
}

// start runs f on a goroutine of its own that wait waits for; its error
// stops the daemon.
func (d *wired) start(f func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := f(); err != nil {
			d.errc <- err
		}
	}()
}

// wait tells systemd the daemon is up and waits until ctx is done or a
// part fails, then for every part to stop.
func (d *wired) wait(ctx context.Context) error {
	d.log.Info("totemd running", "version", version, "state_dir", d.cfg.StateDir, "panel", d.useTerm)
	serve(ctx, d.log, d.level, d.settings, d.app, &d.link, &d.credsBeat)
	var first error
	select {
	case <-ctx.Done():
	case first = <-d.errc:
		d.cancel()
	}
	d.wg.Wait()
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
	last := ""
	clock.NowAndEvery(ctx, 500*time.Millisecond, func() bool {
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
		return false
	})
}
