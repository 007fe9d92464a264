package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cmd/internal/sdnotify"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/stamp"
	"github.com/aslcns/totem/sync/update"
	"github.com/aslcns/totem/sync/update/agent"
	"github.com/aslcns/totem/sync/uplink"
)

// Updates (sync/update/agent): totemd downloads a job's bundle over its
// uplink and, once the totem is quiet, holds it (the gate keeps the
// citizen's input back) and asks the supervisor to apply it by creating
// the file "apply" in the update directory; totem-update.path starts
// totem-update.service, which runs `totemd update-apply` as root: it
// installs with dpkg, restarts totemd and commits only when the new
// totemd has written its health report (ready, uplink connected,
// telemetry sent) within update.health_window, else reinstalls the
// previous package. The supervisor is a unit of its own because totemd
// runs unprivileged and because the process that judges an update must
// outlive the one being replaced.

// updateDir is where the agent keeps its state, the payload, the health
// report and the request for the supervisor.
func updateDir(cfg *config.Totemd) string { return filepath.Join(cfg.StateDir, "update") }

// debArch is the Debian name of the architecture this binary runs.
func debArch(cfg *config.Totemd) string {
	if cfg.Update.Arch != "" {
		return cfg.Update.Arch
	}
	if runtime.GOARCH == "arm" {
		return "armhf"
	}
	return runtime.GOARCH
}

// updater is totemd's side; nil when updates are disabled.
type updater struct {
	cfg     *config.Totemd
	gate    *agent.Gate
	link    *agent.Link
	started time.Time
}

// gateDevices passes the citizen's input through the update gate.
func gateDevices(cfg *config.Totemd, dev firmware.Devices) (firmware.Devices, *updater) {
	if !cfg.Update.Enabled {
		return dev, nil
	}
	u := &updater{cfg: cfg, gate: agent.NewGate(cfg.Update.Quiet.Duration, nil), started: time.Now()}
	if h, ok := dev.Reader.(hal.ReaderHealth); ok {
		dev.Reader = healthReader{gatedReader{dev.Reader, u.gate}, h}
	} else {
		dev.Reader = gatedReader{dev.Reader, u.gate}
	}
	if b, ok := dev.Keypad.(hal.Beeper); ok {
		dev.Keypad = beepKeypad{gatedKeypad{dev.Keypad, u.gate}, b}
	} else {
		dev.Keypad = gatedKeypad{dev.Keypad, u.gate}
	}
	if dev.Keyboard != nil { // an operator typing is someone there too
		dev.Keyboard = gatedKeypad{dev.Keyboard, u.gate}
	}
	return dev, u
}

type gatedReader struct {
	hal.CardReader
	g *agent.Gate
}

func (r gatedReader) Next(ctx context.Context) (hal.CardEvent, error) {
	ev, err := r.CardReader.Next(ctx)
	if err != nil || ev.Kind == 0 { // a reader state change, no citizen
		return ev, err
	}
	if err := r.g.Pass(ctx, ev.Kind == hal.CardInserted); err != nil {
		return ev, err
	}
	return ev, nil
}

type healthReader struct {
	gatedReader
	hal.ReaderHealth
}

type gatedKeypad struct {
	hal.Keypad
	g *agent.Gate
}

func (k gatedKeypad) Next(ctx context.Context) (hal.Key, error) {
	key, err := k.Keypad.Next(ctx)
	if err != nil {
		return key, err
	}
	return key, k.g.Key(ctx)
}

type beepKeypad struct {
	gatedKeypad
	hal.Beeper
}

// receive is the uplink's OnUpdate.
func (u *updater) receive(b []byte) {
	if l := u.link; l != nil {
		l.Receive(b)
	}
}

// onUpdate returns the uplink's OnUpdate, nil when updates are off.
func (u *updater) onUpdate() func([]byte) {
	if u == nil {
		return nil
	}
	return u.receive
}

// newLink must run before the uplink is created (its OnUpdate).
func (u *updater) newLink(up *uplink.Uplink, log *slog.Logger) {
	if u != nil {
		u.link = agent.NewLink(up, log, 0)
	}
}

// run downloads offered bundles and hands them to the supervisor, and
// writes the health report once this totemd is healthy.
func (u *updater) run(ctx context.Context, up *uplink.Uplink, log *slog.Logger) error {
	if u == nil {
		return nil
	}
	keys, err := cli.TrustedKeys(u.cfg.ConsoleKeys, u.cfg.ConsoleKeysFile)
	if err != nil {
		return err
	}
	dir := updateDir(u.cfg)
	a := agent.New(agent.Options{Dir: dir, Trusted: keys, Arch: debArch(u.cfg), Source: u.link,
		Installer: runningOnly{}, Quiet: u.gate, Report: u.link.Report, Logger: log})
	go u.health(ctx, up, log)
	withdrawLeftRequest(dir, log)
	// A probation under way is the supervisor's; Serve only downloads.
	agent.Serve(ctx, a, u.link, 0, func(ctx context.Context) error { return u.apply(ctx, log) })
	return nil
}

// apply holds the totem quiet and asks the supervisor; the hold is not
// released: the supervisor restarts totemd. If nothing happens within
// the health window (the units are missing, the path unit is stopped),
// the totem is given back to its citizens.
func (u *updater) apply(ctx context.Context, log *slog.Logger) error {
	var release func()
	for {
		var ok bool
		if release, ok = u.gate.Hold(); ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	request := filepath.Join(updateDir(u.cfg), "apply")
	if err := os.WriteFile(request, []byte(bootID()), 0o600); err != nil {
		release()
		return err
	}
	log.Info("update downloaded, totem held quiet, supervisor asked")
	select {
	case <-ctx.Done():
	case <-time.After(u.cfg.Update.HealthWindow.Duration):
		// The request goes with the hold: a supervisor started later
		// (the path unit enabled, a boot) must not install while a
		// citizen is served, and without a request it does not.
		if err := os.Remove(request); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("update: the request to the supervisor not withdrawn; totem kept held", "err", err)
			return err
		}
		log.Error("update: the supervisor did not restart totemd; request withdrawn, totem released (is totem-update.path enabled?)")
		release()
	}
	return nil
}

// withdrawLeftRequest removes an apply request an earlier totemd left in
// dir (killed while it held the totem, before the supervisor took it):
// this one holds nothing, and may be serving a citizen when the path unit
// fires. It reports whether there was one.
func withdrawLeftRequest(dir string, log *slog.Logger) bool {
	if err := os.Remove(filepath.Join(dir, "apply")); err != nil {
		return false
	}
	log.Warn("update: a request to the supervisor left by an earlier run withdrawn")
	return true
}

// health writes the report the supervisor waits for, once: ready (this
// runs after the devices were probed and the outbox opened), the uplink
// connected and a telemetry report sent since this process started.
func (u *updater) health(ctx context.Context, up *uplink.Uplink, log *slog.Logger) {
	clock.NowAndEvery(ctx, time.Second, func() bool {
		if !up.Connected() || !up.TelemetrySent().After(u.started) {
			return false
		}
		r := agent.HealthReport{Version: version, Started: u.started, At: time.Now()}
		if err := agent.WriteHealth(filepath.Join(updateDir(u.cfg), "health.json"), r); err != nil {
			log.Warn("update health report not written", "err", err)
		}
		return true
	})
}

// runningOnly is totemd's Installer: it knows the running version and
// installs nothing (the supervisor does).
type runningOnly struct{}

func (runningOnly) Running() (string, error) { return version, nil }
func (runningOnly) Install(context.Context, string, *update.Manifest) error {
	return errors.New("totemd installs nothing: totem-update.service does")
}
func (runningOnly) Rollback(context.Context) error { return errors.New("totemd rolls nothing back") }
func (runningOnly) Commit(context.Context) error   { return errors.New("totemd commits nothing") }

// updateApplyCmd is the supervisor: `totemd update-apply --config FILE`,
// run as root by totem-update.service.
func updateApplyCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.Flags("update-apply", stderr)
	cfgPath := fs.String("config", "", "totemd's configuration file")
	lib := fs.String("dir", "/var/lib/totem-update", "the supervisor's own directory (packages kept for rollback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadTotemd(*cfgPath)
	if err != nil {
		return err
	}
	log, _ := sdnotify.Logger(stderr, cfg.Log.Level, cfg.Log.Format)
	keys, err := cli.TrustedKeys(cfg.ConsoleKeys, cfg.ConsoleKeysFile)
	if err != nil {
		return err
	}
	dir := updateDir(cfg)
	var a *agent.Agent
	a = agent.New(agent.Options{Dir: dir, Trusted: keys, Arch: debArch(cfg), Logger: log,
		Installer:    &agent.Dpkg{Dir: *lib, Package: "totemd", Service: "totemd.service"},
		Health:       agent.FileHealth{Path: filepath.Join(dir, "health.json"), Since: func() time.Time { return a.Installed() }},
		Quiet:        heldByTotemd{}, // totemd holds the gate until it is restarted
		HealthWindow: cfg.Update.HealthWindow.Duration})
	return supervise(ctx, a, dir, log)
}

// supervise is the supervisor's run over the agent a whose directory is
// dir. The request ("apply") is taken first: the path unit would start
// this again while it exists. A downloaded update is installed only on
// that request, which totemd makes once it holds the totem quiet (the
// supervisor's Quiet takes that for granted): started without one — at
// boot (the unit is wanted by multi-user.target to resume a probation)
// or by hand — the supervisor leaves a downloaded update to totemd, and
// only judges a probation under way.
func supervise(ctx context.Context, a *agent.Agent, dir string, log *slog.Logger) error {
	request := filepath.Join(dir, "apply")
	boot, rerr := os.ReadFile(request)
	err := os.Remove(request)
	requested := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("totemd update-apply: %w", err)
	}
	// The request names the boot it was made in: one from an earlier boot
	// (the board lost power between the request and the supervisor) was
	// made by a totemd that holds nothing now. An empty one is an older
	// totemd's, made in this boot (the path unit starts us at once).
	if b := strings.TrimSpace(string(boot)); requested && rerr == nil && b != "" && b != bootID() {
		log.Warn("update-apply: a request from an earlier boot ignored; the update waits for totemd to ask again")
		requested = false
	}
	if !requested {
		if s, err := a.Status(); err == nil && s != nil && s.State == update.StateDownloading {
			log.Info("update-apply: the downloaded update waits for totemd to ask (the totem quiet); nothing installed", "job", s.Job)
			return nil
		}
	}
	return a.Apply(ctx)
}

// bootID is this boot's id, which an apply request carries.
var bootID = func() string { return stamp.BootID("/proc/sys/kernel/random/boot_id") }

type heldByTotemd struct{}

func (heldByTotemd) Hold() (func(), bool) { return func() {}, true }
