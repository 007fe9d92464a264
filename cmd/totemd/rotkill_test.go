package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/synctest"
)

// rotkillBinaries builds totemhub and totemd with the kill hook
// (-tags totemd_rotkill: TOTEMD_ROTATE_KILL_AT=STEP makes totemd SIGKILL
// itself at that step of a rotation; unset, it is totemd as shipped).
func rotkillBinaries(t *testing.T) (totemd, totemhub string) {
	t.Helper()
	dir := t.TempDir()
	totemd, totemhub = filepath.Join(dir, "totemd"), filepath.Join(dir, "totemhub")
	for _, b := range [][]string{
		{"build", "-tags", "totemd_rotkill", "-o", totemd, "."},
		{"build", "-o", totemhub, "../totemhub"},
	} {
		if out, err := exec.Command("go", b...).CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", b, err, out)
		}
	}
	return totemd, totemhub
}

// proc is a child process whose output goes to a file.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startProc(t *testing.T, logPath string, env []string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(args[0], args[1:]...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.exited) }()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process it started: SIGTERM, SIGKILL after 5 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// scrape reads the hub's /metrics into series → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	io.Copy(io.Discard, resp.Body)
	return m
}

// TestRotationSurvivesKill9AtEveryStep runs the real totemhub and the real
// totemd (headless, simulated devices, its own state directory) with
// credentials whose rotation is due, and kills totemd with SIGKILL at each
// step of the rotation exchange: the new secret generated, written to the
// pending file, sent to the hub (PUBACK), the hub's reply (both secrets
// valid there), the pending file renamed over the file (before the
// reconnection with the new secret). Each time totemd, started again as
// shipped, logs in (the hub shows it online), completes the rotation (the
// hub counts one more confirmed rotation; the file holds a secret due in
// the future), and the hub never counts a failed login nor an expired
// secret. A last kill -9 after the rotation completed, and a restart, log
// in with the new secret.
func TestRotationSurvivesKill9AtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs totemhub and totemd")
	}
	totemdBin, hubBin := rotkillBinaries(t)
	dir := t.TempDir()
	const id = "rot-01"
	mqttAddr, httpAddr := synctest.FreeAddr(t), synctest.FreeAddr(t)
	stateDir, credDir := filepath.Join(dir, "hub"), filepath.Join(dir, "credentials")
	hubCfg := filepath.Join(dir, "totemhub.toml")
	if err := os.WriteFile(hubCfg, fmt.Appendf(nil, `state_dir = %q
[broker]
listen = %q
tls_listen = ""
[fleet]
credentials_dir = %q
provision = []
console = "console"
[http]
listen = %q
[log]
level = "info"
`, stateDir, mqttAddr, credDir, httpAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	hubLog := filepath.Join(dir, "totemhub.log")
	if out, err := exec.Command(hubBin, "--config", hubCfg, "provision", id).CombinedOutput(); err != nil {
		t.Fatalf("totemhub provision: %v\n%s", err, out)
	}
	hub := startProc(t, hubLog, nil, hubBin, "--config", hubCfg)
	credFile := filepath.Join(credDir, id+".json")
	totemCfg := filepath.Join(dir, "totemd.toml")
	if err := os.WriteFile(totemCfg, fmt.Appendf(nil, `state_dir = %q
console_keys_file = %q
[totem]
id = %q
[broker]
url = "mqtt://%s"
credentials_file = %q
reconnect_max = "1s"
[devices]
reader = "sim"
printer = "sim"
panel = "none"
[log]
level = "info"
`, filepath.Join(dir, "totemd"), filepath.Join(credDir, "console_keys.json"), id, mqttAddr, credFile), 0o600); err != nil {
		t.Fatal(err)
	}
	totemdLog := filepath.Join(dir, "totemd.log")
	logs := func() string {
		h, _ := os.ReadFile(hubLog)
		d, _ := os.ReadFile(totemdLog)
		return fmt.Sprintf("totemhub:\n%s\ntotemd:\n%s", tailLines(string(h), 40), tailLines(string(d), 60))
	}
	series := func(name, event string) string {
		if event != "" {
			return fmt.Sprintf(`%s{event=%q,totem=%q}`, name, event, id)
		}
		return fmt.Sprintf(`%s{totem=%q}`, name, id)
	}
	online, rotated := series("totem_online", ""), series("totem_credential_events_total", "rotated")
	failed, expired := series("totem_credential_events_total", "failed"), series("totem_credential_events_total", "expired")
	// await polls the hub's metrics until cond holds, for at most 30 s.
	await := func(what string, cond func(m map[string]float64) bool) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			select {
			case <-hub.exited:
				t.Fatalf("totemhub exited\n%s", logs())
			default:
			}
			if m := scrape(t, httpAddr); m != nil && cond(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s\n%s", what, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	await("the hub's metrics", func(m map[string]float64) bool { _, ok := m[rotated]; return ok })
	// makeDue sets the file's rotate_at in the past, totemd stopped.
	makeDue := func() {
		t.Helper()
		f, err := creds.Load(credFile)
		if err != nil {
			t.Fatal(err)
		}
		f.RotateAt = time.Now().Add(-time.Hour)
		if err := creds.Save(credFile, f); err != nil {
			t.Fatal(err)
		}
	}
	want := 0.0 // confirmed rotations the hub counted
	for _, step := range []string{"generated", "pending", "sent", "replied", "promoted"} {
		makeDue()
		before, _ := creds.Load(credFile)
		killed := startProc(t, totemdLog, []string{"TOTEMD_ROTATE_KILL_AT=" + step}, totemdBin, "--config", totemCfg, "--panel", "none")
		select {
		case <-killed.exited:
		case <-time.After(60 * time.Second):
			t.Fatalf("step %s: totemd not killed within 60 s\n%s", step, logs())
		}
		if ws, ok := killed.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("step %s: totemd ended with %v, not SIGKILL\n%s", step, killed.cmd.ProcessState, logs())
		}
		// The kill closed its socket: the broker publishes its will.
		await(step+": offline after the kill", func(m map[string]float64) bool { return m[online] == 0 })
		if step == "promoted" {
			// The file holds the new secret: no rotation is due any
			// more, and the hub confirms it at the first login.
			if f, _ := creds.Load(credFile); f.Password == before.Password || !f.RotateAt.After(time.Now()) {
				t.Fatalf("step %s: the file was not replaced by the new secret", step)
			}
		} else if f, _ := creds.Load(credFile); f.Password != before.Password {
			t.Fatalf("step %s: the file changed before the hub's reply", step)
		}
		p := startProc(t, totemdLog, nil, totemdBin, "--config", totemCfg, "--panel", "none")
		want++
		await(step+": online again and the rotation confirmed", func(m map[string]float64) bool {
			return m[online] == 1 && m[rotated] == want
		})
		after, err := creds.Load(credFile)
		if err != nil {
			t.Fatal(err)
		}
		if after.Password == before.Password || !after.RotateAt.After(time.Now().Add(30*24*time.Hour)) ||
			!after.Expires.After(after.RotateAt) {
			t.Fatalf("step %s: the file after the rotation: rotate_at %v expires %v (changed %v)", step, after.RotateAt, after.Expires,
				after.Password != before.Password)
		}
		if _, err := os.Stat(credFile + ".next"); err == nil {
			t.Errorf("step %s: the pending file outlived the rotation", step)
		}
		// Stop it as a crash would, between rotations too.
		p.cmd.Process.Kill()
		<-p.exited
		await(step+": offline after the second kill", func(m map[string]float64) bool { return m[online] == 0 })
	}
	// Once more, no rotation due: it logs in with the secret of the last.
	startProc(t, totemdLog, nil, totemdBin, "--config", totemCfg, "--panel", "none")
	m := await("online with the last rotated secret", func(m map[string]float64) bool { return m[online] == 1 })
	if m[rotated] != want || m[failed] != 0 || m[expired] != 0 {
		t.Fatalf("credential events: rotated %v (want %v), failed %v, expired %v\n%s", m[rotated], want, m[failed], m[expired], logs())
	}
	b, _ := os.ReadFile(totemdLog)
	if n := strings.Count(string(b), "test hook: kill -9 at rotation step"); n != 5 {
		t.Errorf("the hook killed totemd %d times, want 5\n%s", n, logs())
	}
	if os.Getenv("ROTKILL_LOGS") != "" {
		t.Log(logs())
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
