package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var units = []struct {
	name, bin string
}{{"totemd.service", "/usr/bin/totemd"}, {"totemhub.service", "/usr/bin/totemhub"}}

// needTool skips the test, saying why, where a systemd tool is missing
// (.ci/run installs systemd).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package systemd): unit checks skipped", name)
	}
	return p
}

// verifyUnit runs systemd-analyze verify on the unit file at path, with
// ExecStart's program (bin) at exe instead: the only change, so that the
// check that the command is executable holds outside an installed root.
// Any output (an unknown key, a bad value) fails it, not only its status.
func verifyUnit(t *testing.T, path, bin, exe string) {
	t.Helper()
	analyze := needTool(t, "systemd-analyze")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "ExecStart="+bin+" ") {
		t.Fatalf("%s: ExecStart is not %s", path, bin)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "ExecStart="+bin+" ", "ExecStart="+exe+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=false", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", filepath.Base(path), err, out)
	}
}

var exposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// securityScore is systemd-analyze security --offline=true's overall
// exposure of the unit file at path (0 best, 10 worst).
func securityScore(t *testing.T, path string) float64 {
	t.Helper()
	analyze := needTool(t, "systemd-analyze")
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", path, err, out)
	}
	m := exposure.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in:\n%s", out)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// maxExposure is the worst overall exposure a unit may have.
const maxExposure = 3.0

func TestUnitsVerify(t *testing.T) {
	self, err := os.Executable() // any executable stands for the program
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		verifyUnit(t, filepath.Join("systemd", u.name), u.bin, self)
	}
}

func TestUnitsSecurity(t *testing.T) {
	for _, u := range units {
		if s := securityScore(t, filepath.Join("systemd", u.name)); s > maxExposure {
			t.Errorf("%s: exposure %.1f, want ≤ %.1f", u.name, s, maxExposure)
		} else {
			t.Logf("%s: exposure %.1f", u.name, s)
		}
	}
}

// What totemd's unit must say, beyond what the score weighs: readiness
// and the watchdog, the user and its devices, pcscd and the clock.
func TestTotemdUnitSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("systemd", "totemd.service"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "User=totem", "SupplementaryGroups=dialout",
		"Wants=pcscd.socket", "DevicePolicy=closed", "DeviceAllow=char-ttyS rw", "DeviceAllow=char-ttyUSB rw",
		"DeviceAllow=char-gpiochip rw", "DeviceAllow=char-i2c rw", "StateDirectory=totem", "ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !lines[want] {
			t.Errorf("totemd.service lacks %q", want)
		}
	}
	after := regexp.MustCompile(`(?m)^After=(.*)$`).FindStringSubmatch(string(b))
	if after == nil || !strings.Contains(after[1], "pcscd.socket") || !strings.Contains(after[1], "time-sync.target") {
		t.Errorf("totemd.service: After= must name pcscd.socket and time-sync.target, got %q", after)
	}
	if lines["PrivateDevices=yes"] || lines["ProtectKernelTunables=yes"] {
		t.Error("totemd.service: PrivateDevices hides /dev/ttyS*, ProtectKernelTunables breaks the sysfs GPIO fallback")
	}
}

// The sysusers.d snippet makes the user totem, in dialout; the
// tmpfiles.d one its state directory, 0700: applied to an empty root.
func TestSysusersAndTmpfiles(t *testing.T) {
	sysusers := needTool(t, "systemd-sysusers")
	tmpfiles := needTool(t, "systemd-tmpfiles")
	root := t.TempDir()
	snippets, err := filepath.Abs("systemd")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root="+root, filepath.Join(snippets, "totem.sysusers")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc", "group"))
	if !regexp.MustCompile(`(?m)^totem:x:\d+:\d+:`).Match(passwd) || !regexp.MustCompile(`(?m)^dialout:x:\d+:.*\btotem\b`).Match(group) {
		t.Fatalf("passwd:\n%s\ngroup:\n%s", passwd, group)
	}
	if out, err := exec.Command(tmpfiles, "--root="+root, "--create", filepath.Join(snippets, "totem.tmpfiles")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	st, err := os.Stat(filepath.Join(root, "var", "lib", "totem"))
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("/var/lib/totem: %v %v", st, err)
	}
}
