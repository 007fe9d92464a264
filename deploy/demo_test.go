package deploy

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The stand-ins demo.sh drives here: a hub that writes the credentials the
// demo waits for and listens on the TLS port it is given (and takes the demo
// ops account "totemhub user add" makes), a totemd without
// PC/SC that records how it was started and exits with FAKE_TOTEMD_STATUS,
// a totemctl that prints a status line.
const (
	fakeHub = `#!/bin/bash
case "$1" in user) cat >/dev/null; exit 0;; esac
mkdir -p state/credentials
for f in ca.pem demo-01.json console.json console.key; do echo x >state/credentials/$f; done
echo "hub up" >&2
socat TCP-LISTEN:$TOTEM_DEMO_TLS_PORT,bind=127.0.0.1,reuseaddr,fork /dev/null &
l=$!
trap 'kill $l; exit 0' TERM INT
wait
`
	fakeTotemd = `#!/bin/sh
case "$1" in version) echo "totemd test (pcsc: false)"; exit 0;; esac
echo "$*" >>state/totemd.args
exit ${FAKE_TOTEMD_STATUS:-0}
`
	fakeTotemctl = "#!/bin/sh\necho 'TOTEM  STATUS'\n"
)

type demoRig struct {
	t    *testing.T
	dir  string
	env  []string
	port int
}

func newDemoRig(t *testing.T) *demoRig {
	t.Helper()
	for _, tool := range []string{"socat", "script"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (deploy/deps.sh installs socat; script is in bsdutils): %v", tool, err)
		}
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"totemhub": fakeHub, "totemd": fakeTotemd, "totemctl": fakeTotemctl} {
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := strconv.Itoa(port)
	return &demoRig{t: t, dir: dir, port: port,
		env: append(os.Environ(), "TOTEM_DEMO_PORTS="+p, "TOTEM_DEMO_TLS_PORT="+p, "TERM=dumb")}
}

// run runs demo.sh as make run does, in a terminal (script's pty) when tty,
// with Enter typed for its "Press Enter"; it returns the exit status and
// the output.
func (r *demoRig) run(tty bool, env ...string) (int, string) {
	r.t.Helper()
	script, _ := filepath.Abs("demo.sh")
	var cmd *exec.Cmd
	if tty {
		cmd = exec.Command("script", "-q", "-e", "-c", "bash "+script+" bin", "/dev/null")
	} else {
		cmd = exec.Command("bash", script, "bin")
	}
	cmd.Dir, cmd.Env = r.dir, append(r.env, env...)
	cmd.Stdin = strings.NewReader("\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return code, out.String()
}

func (r *demoRig) file(name string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, name))
	return string(b)
}

// TestDemoScript: make run exits 0 after a normal quit (the EXIT trap used
// to make it 1) and stops the hub it started; a totemd failure keeps its
// message and exits with totemd's status; a pid file of a dead hub is not
// taken for a running one; a running hub is used, left running, and its log
// is not truncated.
func TestDemoScript(t *testing.T) {
	r := newDemoRig(t)

	code, out := r.run(true)
	if code != 0 || !strings.Contains(out, "totemhub running") || !strings.Contains(out, "TOTEM  STATUS") {
		t.Fatalf("normal quit: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "state/totemhub.pid")); !os.IsNotExist(err) {
		t.Errorf("the hub this run started left its pid file: %v", err)
	}
	if args := r.file("state/totemd.args"); !strings.Contains(args, "--panel terminal --cards cns --vprinter state/totemd/paper") {
		t.Errorf("totemd started with %q", args)
	}

	code, out = r.run(true, "FAKE_TOTEMD_STATUS=3")
	if code != 3 || !strings.Contains(out, "totemd stopped with status 3") || strings.Contains(out, "Receipts printed") {
		t.Errorf("totemd failing: exit %d\n%s", code, out)
	}

	// A pid file naming a process that is no totemhub (this test): a new hub.
	if err := os.WriteFile(filepath.Join(r.dir, "state/totemhub.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = r.run(false)
	if code != 0 || !strings.Contains(out, "is gone: starting a new one") || !strings.Contains(out, "totemhub running (pid") {
		t.Errorf("stale pid file: exit %d\n%s", code, out)
	}

	// A hub already running (started here, so this test stops it).
	hub := exec.Command(filepath.Join(r.dir, "bin", "totemhub"))
	hub.Dir, hub.Env = r.dir, r.env
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Process.Signal(syscall.SIGTERM); hub.Wait() })
	if err := os.WriteFile(filepath.Join(r.dir, "state/totemhub.pid"), []byte(strconv.Itoa(hub.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := r.file("state/totemhub.log")
	code, out = r.run(true)
	if code != 0 || !strings.Contains(out, "already running (pid "+strconv.Itoa(hub.Process.Pid)+")") {
		t.Errorf("running hub: exit %d\n%s", code, out)
	}
	if err := hub.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the demo stopped a hub it did not start: %v", err)
	}
	if after := r.file("state/totemhub.log"); !strings.HasPrefix(after, before) || before == "" {
		t.Errorf("the running hub's log was truncated: %q → %q", before, after)
	}
}
