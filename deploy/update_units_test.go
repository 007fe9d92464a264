package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The update supervisor's units verify together (the path unit names the
// service), the service runs totemd update-apply as a oneshot with the
// directory its StateDirectory makes, and the path unit watches the file
// totemd writes in the example configuration's update directory.
func TestUpdateUnits(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	dir := t.TempDir()
	svc, err := os.ReadFile(filepath.Join("systemd", "totem-update.service"))
	if err != nil {
		t.Fatal(err)
	}
	path, err := os.ReadFile(filepath.Join("systemd", "totem-update.path"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=oneshot", "StateDirectory=totem-update",
		"ExecStart=/usr/bin/totemd update-apply --config /etc/totem/totemd.toml --dir /var/lib/totem-update"} {
		if !strings.Contains(string(svc), "\n"+want+"\n") {
			t.Errorf("totem-update.service lacks %q", want)
		}
	}
	if !strings.Contains(string(path), "\nPathExists=/var/lib/totem/state/totemd/update/apply\n") {
		t.Error("totem-update.path does not watch the update directory's apply file")
	}
	svc = []byte(strings.ReplaceAll(string(svc), "ExecStart=/usr/bin/totemd ", "ExecStart=/bin/true "))
	os.WriteFile(filepath.Join(dir, "totem-update.service"), svc, 0o644)
	os.WriteFile(filepath.Join(dir, "totem-update.path"), path, 0o644)
	cmd := exec.Command(analyze, "verify", "--man=false", "totem-update.service", "totem-update.path")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
