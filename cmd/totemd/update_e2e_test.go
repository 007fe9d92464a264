package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/update"
	"github.com/aslcns/totem/sync/update/agent"
	"github.com/aslcns/totem/sync/update/rollout"
)

// buildVersion builds totemd with -X main.version=v into dir.
func buildVersion(t *testing.T, dir, v string) string {
	t.Helper()
	bin := filepath.Join(dir, "totemd-"+v)
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", v, err, out)
	}
	return bin
}

// procInstaller is the test's Installer, standing in for dpkg and
// systemctl: the installed program is bin; Install keeps it as bin.prev,
// puts the payload in its place and restarts the process; Rollback puts
// bin.prev back and restarts. The process is a real totemd.
type procInstaller struct {
	t        *testing.T
	bin, cfg string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *procInstaller) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, "--config", p.cfg, "--panel", "none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Logf("start %s: %v", p.bin, err) // a broken build may not even start
		p.cmd, p.done = nil, nil
		return
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.t.Log("totemd: " + sc.Text())
		}
		cmd.Wait()
		p.t.Logf("totemd exited: %v", cmd.ProcessState)
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

func (p *procInstaller) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (p *procInstaller) Running() (string, error) {
	out, err := exec.Command(p.bin, "version").Output()
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "", fmt.Errorf("version said %q", out)
	}
	return f[1], nil
}

func (p *procInstaller) Install(_ context.Context, path string, _ *update.Manifest) error {
	if err := os.Rename(p.bin, p.bin+".prev"); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.bin, b, 0o755); err != nil {
		return err
	}
	p.stop()
	p.start()
	return nil
}

func (p *procInstaller) Rollback(context.Context) error {
	if err := os.Rename(p.bin+".prev", p.bin); err != nil {
		return err
	}
	p.stop()
	p.start()
	return nil
}

func (p *procInstaller) Commit(context.Context) error { return os.Remove(p.bin + ".prev") }

// An update end to end with two real builds of totemd: the hub's rollout
// server over the embedded broker offers a bundle; the running totemd
// 1.0.0 downloads it over its uplink, holds itself quiet and asks for the
// supervisor (the apply file); the supervisor (the agent's Apply, run here
// as totem-update.service would run it) installs 2.0.0, which must write
// its health report (ready, connected, telemetry sent) to be committed.
// Then a broken build (it exits at start) and a silent one (it runs but
// never connects) are rolled back to 2.0.0, which reconnects and reports
// each rollback.
func TestUpdateRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds totemd twice")
	}
	dir := t.TempDir()
	v1 := buildVersion(t, dir, "1.0.0")
	v2 := buildVersion(t, dir, "2.0.0")

	c := synctest.Start(t, synctest.Options{Users: []synctest.User{{Name: "t-up", Role: creds.RoleTotem}}})
	srv, hubMe, totem := c.Broker, c.HubCreds, c.Creds("t-up")
	ops, err := cmdsig.Generate("ops1", cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}

	// The totem: its configuration, credentials and program.
	credsFile := filepath.Join(dir, "creds", "t-up.json")
	if err := creds.Save(credsFile, totem); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cfgFile := filepath.Join(dir, "totemd.toml")
	cfg := fmt.Sprintf(`state_dir = %q
console_keys = [{id = "ops1", role = "ops", public_key = %q}]
[totem]
id = "t-up"
[broker]
url = %q
credentials_file = %q
reconnect_min = "100ms"
reconnect_max = "500ms"
[session]
idle_timeout = "5s"
[update]
enabled = true
quiet = "5s"
health_window = "30s"
`, state, ops.Public().Entry().PublicKey, srv.URL(), credsFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(dir, "bin", "totemd")
	os.MkdirAll(filepath.Dir(installed), 0o755)
	if b, err := os.ReadFile(v1); err != nil || os.WriteFile(installed, b, 0o755) != nil {
		t.Fatal(err)
	}
	proc := &procInstaller{t: t, bin: installed, cfg: cfgFile}
	proc.start()
	t.Cleanup(proc.stop)

	// The hub's side.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	send := rollout.NewMQTTSender()
	ro, err := rollout.Open(filepath.Join(dir, "hub"), send, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		rollout.Serve(ctx, ro, send, rollout.ServeOptions{URL: srv.URL(), ClientID: "hub-upd-1", Username: hubMe.Username,
			Password: hubMe.Password, Tick: 100 * time.Millisecond})
	}()

	// The supervisor, as totem-update.path starts it: when the apply
	// file appears.
	updDir := filepath.Join(state, "update")
	var sup *agent.Agent
	sup = agent.New(agent.Options{Dir: updDir, Trusted: []cmdsig.PublicKey{ops.Public()}, Arch: "amd64",
		Installer: proc, Health: agent.FileHealth{Path: filepath.Join(updDir, "health.json"), Since: func() time.Time { return sup.Installed() }},
		Quiet: heldByTotemd{}, HealthWindow: 15 * time.Second, Poll: 100 * time.Millisecond})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(updDir, "apply")); err == nil {
				if err := supervise(ctx, sup, updDir, slog.New(slog.DiscardHandler)); err != nil && ctx.Err() == nil {
					t.Errorf("supervisor: %v", err)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	job := func(id, version string, payload []byte) rollout.Totem {
		t.Helper()
		m, err := update.Build("totemd", version, "all", payload, update.DefaultChunk)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Sign(ops); err != nil {
			t.Fatal(err)
		}
		b, _ := m.Marshal()
		if _, err := ro.Create(id, b, payload, []string{"t-up"}, 10, 100); err != nil {
			t.Fatal(err)
		}
		for range 1200 { // 2 minutes at most
			st, err := ro.Status(id)
			if err != nil {
				t.Fatal(err)
			}
			if tt := st.Totems["t-up"]; update.Final(tt.State) {
				return tt
			}
			time.Sleep(100 * time.Millisecond)
		}
		st, _ := ro.Status(id)
		t.Fatalf("job %s: no final state: %+v", id, st.Totems)
		return rollout.Totem{}
	}
	healthVersion := func() string {
		var r agent.HealthReport
		b, _ := os.ReadFile(filepath.Join(updDir, "health.json"))
		json.Unmarshal(b, &r)
		return r.Version
	}

	b2, err := os.ReadFile(v2)
	if err != nil {
		t.Fatal(err)
	}
	if got := job("good", "2.0.0", b2); got.State != update.StateCommitted {
		t.Fatalf("good update: %+v", got)
	}
	if v, err := proc.Running(); v != "2.0.0" || healthVersion() != "2.0.0" {
		t.Fatalf("after the good update: installed %q (%v), healthy %q", v, err, healthVersion())
	}

	broken := []byte("#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
	got := job("broken", "3.0.0", broken)
	if got.State != update.StateRolledBack || !strings.Contains(got.Reason, "health") {
		t.Fatalf("broken update: %+v", got)
	}
	if v, err := proc.Running(); v != "2.0.0" {
		t.Fatalf("after the rollback: installed %q (%v)", v, err)
	}

	// A build that starts and runs but never connects: rolled back too.
	silent := []byte("#!/bin/sh\necho 'silent build: never connects' >&2\nexec sleep 600\n")
	got = job("silent", "4.0.0", silent)
	if got.State != update.StateRolledBack || !strings.Contains(got.Reason, "health") {
		t.Fatalf("silent update: %+v", got)
	}
	if v, err := proc.Running(); v != "2.0.0" {
		t.Fatalf("after the second rollback: installed %q (%v)", v, err)
	}
}
