package totem_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
)

// freeAddr returns a loopback address nobody listens on.
var freeAddr = synctest.FreeAddr

func build(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", bin+"/", "./cmd/totemd", "./cmd/totemhub", "./cmd/totemctl").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestProgramsTogether runs the three programs as a newcomer would: hub,
// totemd headless (stdin closed, as under systemd), totemctl status and a
// command; then totemd stops cleanly and, another time, dies (Last Will).
func TestProgramsTogether(t *testing.T) {
	needTools(t)
	bin := build(t)
	dir := t.TempDir()
	addr, tlsAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	// As the demo: totemd and totemctl over TLS, trusting the CA the hub
	// creates and writes beside their credentials (their default ca_file).
	url := "mqtts://" + tlsAddr
	write(t, dir+"/hub.toml", fmt.Sprintf(`state_dir = %q
[broker]
listen = %q
tls_listen = %q
[fleet]
credentials_dir = %q
provision = ["smoke-01"]
[http]
listen = %q
`, dir+"/hub", addr, tlsAddr, dir+"/creds", httpAddr))
	write(t, dir+"/totemd.toml", fmt.Sprintf(`state_dir = %q
[totem]
id = "smoke-01"
[broker]
url = %q
credentials_file = %q
reconnect_min = "100ms"
reconnect_max = "1s"
`, dir+"/totemd", url, dir+"/creds/smoke-01.json"))
	write(t, dir+"/ctl.toml", fmt.Sprintf(`timeout = "3s"
[broker]
url = %q
credentials_file = %q
`, url, dir+"/creds/console.json"))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var hubLog, totemLog synctest.Log
	hub := startProgram(t, ctx, &hubLog, bin+"/totemhub", "--config", dir+"/hub.toml")
	defer stopProgram(hub)

	startTotem := func() *exec.Cmd {
		return startProgram(t, ctx, &totemLog, bin+"/totemd", "--config", dir+"/totemd.toml")
	}
	ctl := totemctl(ctx, bin, dir+"/ctl.toml")
	// waitStatus waits for the totem's row to say want and to hold the
	// fields in need: presence comes with the birth, the queue only with
	// the first telemetry after it.
	waitStatus := func(want string, need ...string) map[string]any {
		t.Helper()
		var last string
		for ctx.Err() == nil {
			out, err := ctl("status", "-o", "json", "smoke-01")
			last = out
			if err == nil {
				var rows []map[string]any
				if json.Unmarshal([]byte(out), &rows) == nil && len(rows) == 1 && rows[0]["status"] == want &&
					!slices.ContainsFunc(need, func(k string) bool { return rows[0][k] == nil }) {
					return rows[0]
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("never %s; last status: %s\nhub log:\n%s\ntotemd log:\n%s", want, last, hubLog.String(), totemLog.String())
		return nil
	}

	totemd := startTotem()
	row := waitStatus("online", "queue")
	if q, ok := row["queue"].(float64); !ok || q != 0 {
		t.Errorf("queue in status: %v", row["queue"])
	}
	if out, err := ctl("cmd", "smoke-01", "ping"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("cmd ping = %q, %v", out, err)
	}
	// The send logs and a resynchronisation, through the real ACL.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sendlog", "smoke-01"}, "TOTEM CLOCK"},
		{[]string{"sendlog", "--hub", "-o", "csv"}, "n,received,totem"},
		{[]string{"resync", "smoke-01"}, "0 differences"},
	} {
		if out, err := ctl(c.args...); err != nil || !strings.Contains(out, c.want) {
			t.Fatalf("%v = %q, %v", c.args, out, err)
		}
	}
	// The ops listener: the totem's series on /metrics, the hub ready.
	for _, c := range []struct{ path, want string }{
		{"/metrics", `totem_online{totem="smoke-01"} 1`},
		{"/readyz", "broker: ok\nstore: ok\n"},
	} {
		resp, err := http.Get("http://" + httpAddr + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), c.want) {
			t.Fatalf("GET %s: %d, lacks %q:\n%s", c.path, resp.StatusCode, c.want, b)
		}
	}
	table, err := ctl("status")
	if err != nil || !strings.Contains(table, "smoke-01") || !strings.Contains(table, "online") {
		t.Fatalf("status table = %q, %v", table, err)
	}
	// A clean stop says goodbye and exits 0.
	if err := stopProgram(totemd); err != nil {
		t.Fatalf("totemd exit: %v\n%s", err, totemLog.String())
	}
	waitStatus("offline")
	// A crash leaves the Last Will to say it.
	totemd = startTotem()
	waitStatus("online")
	totemd.Process.Kill()
	totemd.Wait()
	waitStatus("offline")

	// A console command to an offline totem fails clearly.
	if out, err := ctl("cmd", "smoke-01", "ping"); err == nil || !strings.Contains(out, "did not answer") {
		t.Fatalf("cmd to offline totem = %q, %v", out, err)
	}
	for _, f := range []string{"hub/fleet.db", "hub/cms.db", "totemd/outbox.db", "creds/smoke-01.json", "creds/console.json",
		"creds/ca.pem", "hub/ca.key", "hub/server.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("expected %s: %v", f, err)
		}
	}
	for _, f := range []string{"hub/ca.key", "hub/server.key"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	// A console trusting another CA fails, saying which CA file and
	// which broker.
	if _, err := pki.LoadOrCreateCA(dir+"/other", "another CA", time.Now()); err != nil {
		t.Fatal(err)
	}
	write(t, dir+"/wrongca.toml", fmt.Sprintf("timeout = \"3s\"\n[broker]\nurl = %q\ncredentials_file = %q\nca_file = %q\n",
		url, dir+"/creds/console.json", dir+"/other/ca.pem"))
	out, err := exec.CommandContext(ctx, bin+"/totemctl", "--config", dir+"/wrongca.toml", "status").CombinedOutput()
	if err == nil || !strings.Contains(string(out), dir+"/other/ca.pem") || !strings.Contains(string(out), tlsAddr) ||
		!strings.Contains(string(out), "not signed by") {
		t.Errorf("totemctl with the wrong CA: %v\n%s", err, out)
	}
}

// A broken config file is a clear error naming file and line, and a
// non-zero exit, for each program.
func TestBrokenConfig(t *testing.T) {
	needTools(t)
	bin := build(t)
	dir := t.TempDir()
	path := dir + "/bad.toml"
	write(t, path, "[broker]\nurl = \"mqtt://127.0.0.1:1\"\nulr = \"typo\"\n")
	for _, prog := range []string{"totemd", "totemhub", "totemctl"} {
		args := []string{"--config", path}
		if prog == "totemctl" {
			args = append(args, "status")
		}
		out, err := exec.Command(bin+"/"+prog, args...).CombinedOutput()
		if err == nil {
			t.Errorf("%s accepted a broken config", prog)
			continue
		}
		if !strings.Contains(string(out), path+":3") || !strings.Contains(string(out), "ulr") {
			t.Errorf("%s: error does not name file, line and key: %s", prog, out)
		}
	}
}

// On a machine without the configured GPIO, totemd says which pin is
// missing and exits non-zero (host.Init succeeds there with nothing).
func TestMissingHardwareIsAConfigError(t *testing.T) {
	needTools(t)
	bin := build(t)
	dir := t.TempDir()
	write(t, dir+"/hw.toml", fmt.Sprintf("state_dir = %q\n[devices]\npanel = \"hardware\"\n[devices.keypad]\nrows = [\"GPIO5\", \"GPIO6\", \"GPIO13\", \"GPIO19\"]\ncols = [\"GPIO12\", \"GPIO16\", \"GPIO20\", \"GPIO21\"]\n", dir+"/state"))
	out, err := exec.Command(bin+"/totemd", "--config", dir+"/hw.toml").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `pin "GPIO5" not found`) {
		t.Fatalf("totemd with missing GPIO: %v\n%s", err, out)
	}
}
