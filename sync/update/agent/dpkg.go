package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aslcns/totem/sync/update"
)

// Dpkg is the production Installer, run by the supervisor as root
// (`totemd update-apply`, started by totem-update.path when totemd asks;
// see deploy/systemd). It keeps, in a directory of its own that the totem
// user cannot write:
//
//   - current.deb, the package of the committed version: what Rollback
//     installs. Before the first update there is none, and Install makes
//     it from the installed package with dpkg-repack (Recommends of the
//     totemd package); without it the update fails, nothing changed: an
//     update that could not be undone is not started.
//   - installing.deb, the package on probation, copied from the agent's
//     payload and checked against the manifest after the copy (the
//     payload is the totem user's file).
type Dpkg struct {
	Dir     string // e.g. /var/lib/totem-update
	Package string // "totemd"
	Service string // "totemd.service"
	// Run runs a command; default exec with its output in the error.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

func (d *Dpkg) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if d.Run != nil {
		return d.Run(ctx, name, args...)
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(lastLine(out)))
	}
	return out, nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Running asks dpkg which version of the package is installed.
func (d *Dpkg) Running() (string, error) {
	out, err := d.run(context.Background(), "dpkg-query", "-W", "-f=${Version}", d.Package)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func (d *Dpkg) path(name string) string { return filepath.Join(d.Dir, name) }

// Install keeps a package of the running version, copies and checks the
// new one, installs it and restarts the service.
func (d *Dpkg) Install(ctx context.Context, payload string, m *update.Manifest) error {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(d.path("current.deb")); errors.Is(err, fs.ErrNotExist) {
		// dpkg-repack writes <pkg>_<version>_<arch>.deb in its working
		// directory.
		tmp, err := os.MkdirTemp(d.Dir, "repack-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if _, err := d.run(ctx, "sh", "-c", `cd "$1" && dpkg-repack "$2"`, "sh", tmp, d.Package); err != nil {
			return fmt.Errorf("no package of the running version to roll back to: %w", err)
		}
		debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
		if len(debs) != 1 {
			return errors.New("no package of the running version to roll back to: dpkg-repack wrote none")
		}
		if err := os.Rename(debs[0], d.path("current.deb")); err != nil {
			return err
		}
	}
	if err := copyFile(payload, d.path("installing.deb")); err != nil {
		return err
	}
	f, err := os.Open(d.path("installing.deb"))
	if err != nil {
		return err
	}
	err = m.CheckPayload(f)
	f.Close()
	if err != nil {
		return err
	}
	if _, err := d.run(ctx, "dpkg", "-i", d.path("installing.deb")); err != nil {
		return err
	}
	_, err = d.run(ctx, "systemctl", "restart", d.Service)
	return err
}

// Rollback reinstalls current.deb and restarts the service.
func (d *Dpkg) Rollback(ctx context.Context) error {
	if _, err := d.run(ctx, "dpkg", "-i", d.path("current.deb")); err != nil {
		return err
	}
	_, err := d.run(ctx, "systemctl", "restart", d.Service)
	return err
}

// Commit makes the installed package the one to return to.
func (d *Dpkg) Commit(context.Context) error {
	return os.Rename(d.path("installing.deb"), d.path("current.deb"))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// HealthReport is what a running totemd writes once it is healthy: the
// service ready (outbox open, devices probed), the uplink connected and a
// telemetry report published since it started.
type HealthReport struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	At      time.Time `json:"at"`
}

// WriteHealth writes r to path atomically.
func WriteHealth(path string, r HealthReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// FileHealth is the production Health: the report totemd writes, for the
// version on probation, written after Since (the install).
type FileHealth struct {
	Path  string
	Since func() time.Time
}

// Healthy reads the report.
func (h FileHealth) Healthy(_ context.Context, version string) (bool, string) {
	b, err := os.ReadFile(h.Path)
	if err != nil {
		return false, "no health report from totemd (not ready, uplink not connected or no telemetry sent)"
	}
	var r HealthReport
	if err := json.Unmarshal(b, &r); err != nil {
		return false, "unreadable health report"
	}
	if r.Version != version {
		return false, "the health report is from version " + clipReason(r.Version)
	}
	if h.Since != nil && r.At.Before(h.Since()) {
		return false, "no health report since the install"
	}
	return true, ""
}

func clipReason(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
