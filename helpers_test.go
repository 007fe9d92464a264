package totem_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// needTools skips a test that builds the programs in -short mode, or when
// a command it drives is missing (CI fails instead: .ci/run installs
// them).
func needTools(t *testing.T, cmds ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries")
	}
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing (.ci/run installs it)", c)
			}
			t.Skipf("%s not installed (deploy/deps.sh installs it)", c)
		}
	}
}

// demo is the demo as deploy/demo.sh sets it up, on a free port: the
// programs built in bin, hub.toml and totemd.toml in dir.
type demo struct{ bin, dir, addr string }

// newDemo builds the programs and writes their configuration: the hub's
// broker on a free port, totemd's [broker] section followed by
// totemdTOML.
func newDemo(t *testing.T, totemdTOML string) *demo {
	t.Helper()
	d := &demo{bin: build(t), dir: t.TempDir(), addr: freeAddr(t)}
	write(t, d.dir+"/hub.toml", fmt.Sprintf("state_dir = %q\n[broker]\nlisten = %q\ntls_listen = \"\"\n[fleet]\ncredentials_dir = %q\n[http]\nlisten = \"\"\n",
		d.dir+"/hub", d.addr, d.dir+"/creds"))
	write(t, d.dir+"/totemd.toml", fmt.Sprintf("state_dir = %q\n[broker]\nurl = %q\ncredentials_file = %q\n",
		d.dir+"/totemd", "mqtt://"+d.addr, d.dir+"/creds/demo-01.json")+totemdTOML)
	return d
}

// startHub runs totemhub until stop (SIGTERM) or ctx's end.
func (d *demo) startHub(t *testing.T, ctx context.Context) (stop func()) {
	t.Helper()
	hub := startProgram(t, ctx, nil, d.bin+"/totemhub", "--config", d.dir+"/hub.toml")
	return sync.OnceFunc(func() { stopProgram(hub) })
}

// startProgram runs the program at path with args (stdin /dev/null, stderr
// to stderr, nil: discarded) until ctx's end.
func startProgram(t *testing.T, ctx context.Context, stderr io.Writer, path string, args ...string) *exec.Cmd {
	t.Helper()
	c := exec.CommandContext(ctx, path, args...)
	c.Stderr = stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// stopProgram ends c with SIGTERM and returns how it exited.
func stopProgram(c *exec.Cmd) error {
	c.Process.Signal(syscall.SIGTERM)
	return c.Wait()
}

// totemctl returns a runner of bin's totemctl with the configuration cfg:
// it returns what totemctl printed (stdout and stderr) and its error.
func totemctl(ctx context.Context, bin, cfg string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, bin+"/totemctl", append([]string{"--config", cfg}, args...)...).CombinedOutput()
		return string(out), err
	}
}

// panel is a program running in a tmux session of 80x24 that the test
// types into and reads the screen of.
type panel struct {
	t    *testing.T
	ctx  context.Context
	sock string
}

// startPanel runs command in a new tmux server of its own (socket in
// dir), killed when the test ends.
func startPanel(t *testing.T, ctx context.Context, dir, command string) *panel {
	t.Helper()
	p := &panel{t: t, ctx: ctx, sock: filepath.Join(dir, "tmux.sock")}
	p.tmux("new-session", "-d", "-x", "80", "-y", "24", command)
	t.Cleanup(func() { exec.Command("tmux", "-S", p.sock, "kill-server").Run() })
	return p
}

func (p *panel) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.CommandContext(p.ctx, "tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v %s", args, err, out)
	}
	return string(out)
}

// screen is what the panel shows.
func (p *panel) screen() string { return p.tmux("capture-pane", "-p") }

// waitFor returns the screen once it shows s; the test fails at ctx's end.
func (p *panel) waitFor(s string) string {
	p.t.Helper()
	var last string
	for p.ctx.Err() == nil {
		if last = p.screen(); strings.Contains(last, s) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("the screen never showed %q; it shows:\n%s", s, last)
	return ""
}

// keys sends the keys k (tmux names: "Enter", "Escape", "1").
func (p *panel) keys(k ...string) { p.tmux(append([]string{"send-keys", "-t", "0"}, k...)...) }

// typeText types s one key at a time.
func (p *panel) typeText(s string) {
	for _, c := range s {
		p.keys(string(c))
	}
}

// waitExit waits for the program to end (its session with it) or ctx's end.
func (p *panel) waitExit() {
	for p.ctx.Err() == nil && exec.Command("tmux", "-S", p.sock, "has-session").Run() == nil {
		time.Sleep(50 * time.Millisecond)
	}
}

// consents goes through the FSE consents from their notice: the first
// consent given (1), the second answered with second, the summary
// confirmed.
func (p *panel) consents(second string) {
	p.t.Helper()
	p.waitFor("Informativa FSE")
	p.keys("Enter")
	p.waitFor("Consenso 1 di 2")
	p.keys("1")
	p.waitFor("Consenso 2 di 2")
	p.keys(second)
	p.waitFor("Riepilogo")
	p.keys("Enter")
}

// protocolRE is a protocol number on the panel's screen.
var protocolRE = regexp.MustCompile(`│(\d{15}) *│`)

// demoSecrets are the demo card's personal data and PIN, as patterns:
// the PIN as a word (a random hex id may contain the digits by chance).
var demoSecrets = []string{"RSSMRA80A01H501U", "ROSSI", "MARIO", `\b12345\b`}

// noSecrets fails for each pattern of secrets found in the file at path,
// and returns its content.
func noSecrets(t *testing.T, path string, secrets ...string) []byte {
	t.Helper()
	b, _ := os.ReadFile(path)
	for _, secret := range secrets {
		if regexp.MustCompile(secret).Match(b) {
			t.Errorf("%q in %s", secret, filepath.Base(path))
		}
	}
	return b
}
