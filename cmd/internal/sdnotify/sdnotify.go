// Package sdnotify is what totemd and totemhub tell systemd: ready,
// reloading, stopping, and watchdog pings sent only while the program's
// loops prove that they make progress (a bare ticker would prove only
// that the process exists). It also reloads on SIGHUP: Debian 12's
// systemd 252 has no Type=notify-reload, so a unit's ExecReload sends
// SIGHUP and the program answers RELOADING=1 … READY=1 itself.
//
// Outside systemd (no NOTIFY_SOCKET, no WATCHDOG_USEC) every call does
// nothing.
package sdnotify

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd the service is up (Type=notify).
func Ready(log *slog.Logger) { notify(log, daemon.SdNotifyReady) }

// Stopping tells systemd the service is shutting down.
func Stopping(log *slog.Logger) { notify(log, daemon.SdNotifyStopping) }

func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("systemd notify failed", "state", state, "err", err)
	}
}

// Probe is one loop the watchdog watches: Progress returns when it last
// ran.
type Probe struct {
	Name     string
	Progress func() time.Time
}

// Stale returns the names of the probes whose progress is older than
// limit at now.
func Stale(now time.Time, limit time.Duration, probes []Probe) []string {
	var stale []string
	for _, p := range probes {
		if now.Sub(p.Progress()) > limit {
			stale = append(stale, p.Name)
		}
	}
	return stale
}

// Watchdog pings systemd (WATCHDOG=1) every half of WatchdogSec while
// every probe has made progress within that half, until ctx is done. A
// loop that stands still withholds the pings, so systemd restarts the
// service within WatchdogSec; the log says which loop stood still. It
// returns at once when the watchdog is not enabled for this process.
func Watchdog(ctx context.Context, log *slog.Logger, probes ...Probe) {
	// false: keep WATCHDOG_USEC in the environment (true unsets it,
	// traefik#1525).
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog setting not understood; no pings", "err", err)
		return
	}
	if wd <= 0 {
		return
	}
	every := wd / 2
	withheld := false
	clock.Every(ctx, every, func() bool {
		if stale := Stale(time.Now(), every, probes); len(stale) > 0 {
			if !withheld {
				log.Error("watchdog pings withheld: a loop made no progress; systemd restarts the service unless it moves again",
					"loops", strings.Join(stale, ","), "within", every, "watchdog", wd)
			}
			withheld = true
			return false
		}
		if withheld {
			log.Warn("watchdog pings resumed: every loop moves again")
			withheld = false
		}
		notify(log, daemon.SdNotifyWatchdog)
		return false
	})
}

// OnReload calls reload on every SIGHUP until ctx is done, between
// RELOADING=1 and READY=1. It must be called before READY=1 is sent
// for the first time, so that a SIGHUP never kills the program (Go's
// default for SIGHUP is to exit).
func OnReload(ctx context.Context, log *slog.Logger, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				notify(log, daemon.SdNotifyReloading)
				reload()
				notify(log, daemon.SdNotifyReady)
			}
		}
	}()
}

// Logger returns a logger writing to w in format ("text" or "json") whose
// level ("debug", "info", "warn", "error"; info when unknown) a reload
// can change through the returned LevelVar.
func Logger(w interface{ Write([]byte) (int, error) }, level, format string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	SetLevel(lv, level)
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}

// SetLevel sets lv from a configuration's level name, info when unknown.
func SetLevel(lv *slog.LevelVar, level string) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	lv.Set(l)
}

// Changed lists the settings that differ between two configurations of
// the same struct type, by their TOML names ("section" or
// "section.key"), leaving out those named in applied: what a reload
// could not apply and a restart would.
func Changed(old, cur any, applied ...string) []string {
	skip := make(map[string]bool, len(applied))
	for _, a := range applied {
		skip[a] = true
	}
	var out []string
	var walk func(prefix string, a, b reflect.Value)
	walk = func(prefix string, a, b reflect.Value) {
		for a.Kind() == reflect.Pointer {
			a, b = a.Elem(), b.Elem()
		}
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("toml"), ",")[0]
			if name == "" || name == "-" {
				name = strings.ToLower(f.Name)
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			if skip[name] {
				continue
			}
			fa, fb := a.Field(i), b.Field(i)
			if section(f.Type) {
				walk(name, fa, fb)
				continue
			}
			if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
				out = append(out, name)
			}
		}
	}
	walk("", reflect.ValueOf(old), reflect.ValueOf(cur))
	return out
}

// section reports whether t is a TOML section (a struct with tagged
// fields) rather than a value such as config.Duration.
func section(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("toml") != "" {
			return true
		}
	}
	return false
}

// Beat is a progress marker for a loop that has no Progress of its own.
type Beat struct{ n atomic.Int64 }

// Mark records that the loop ran now.
func (b *Beat) Mark() { b.n.Store(time.Now().UnixNano()) }

// Last is when Mark was last called, zero if never.
func (b *Beat) Last() time.Time {
	if n := b.n.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
