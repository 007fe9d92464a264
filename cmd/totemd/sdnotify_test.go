package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/cmd/internal/sdnotify/sdnotifytest"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/synctest"
)

// The watchdog's interval in these tests: totemd pings every half of it.
const (
	watchdog  = 4 * time.Second
	pingEvery = watchdog / 2
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// wedgeBinary builds totemd with the test hook (-tags totemd_wedge:
// SIGUSR1 wedges the session loop), once per test run.
func wedgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "totemd-wedge-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "totemd")
		out, err := exec.Command("go", "build", "-tags", "totemd_wedge", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// daemon is a real totemd process under a fake systemd (WATCHDOG_USEC
// set) with its configuration file.
type daemon struct {
	*sdnotifytest.Process
	cfg string
}

// startDaemon runs totemd headless (--panel none, simulated devices) with
// a private state dir and an unreachable hub (a free port); withCreds
// provisions its credentials so that the uplink itself runs (offline).
func startDaemon(t *testing.T, withCreds bool, level string) *daemon {
	t.Helper()
	bin := wedgeBinary(t)
	dir := t.TempDir()
	credsFile := filepath.Join(dir, "creds", "t-wd.json")
	if withCreds {
		c, err := creds.Generate("t-wd", creds.RoleTotem)
		if err != nil {
			t.Fatal(err)
		}
		if err := creds.Save(credsFile, c); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{cfg: filepath.Join(dir, "totemd.toml")}
	d.writeConfig(t, dir, credsFile, level, "mqtt://"+synctest.FreeAddr(t))
	d.Process = sdnotifytest.Start(t, []string{fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds())},
		bin, "--config", d.cfg, "--panel", "none")
	return d
}

func (d *daemon) writeConfig(t *testing.T, dir, credsFile, level, url string) {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir = %q
[totem]
id = "t-wd"
[broker]
url = %q
credentials_file = %q
reconnect_min = "100ms"
reconnect_max = "500ms"
[log]
level = %q
`, filepath.Join(dir, "state"), url, credsFile, level)
	if err := os.WriteFile(filepath.Join(dir, "totemd.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A totemd whose hub is unreachable becomes ready and pings the watchdog
// while its loops run; once the session loop is wedged the pings stop
// within one ping interval, the log says which loop stood still, and
// systemd would restart it.
func TestWatchdogStopsWhenSessionLoopWedged(t *testing.T) {
	d := startDaemon(t, true, "debug")
	d.Await("READY=1", 60*time.Second)
	d.AwaitLine(30*time.Second, "subsystem=uplink", "connect failed") // started, offline
	for range 2 {
		d.Await("WATCHDOG=1", 3*pingEvery)
	}

	if err := d.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	d.AwaitLine(10*time.Second, "test hook: session loop wedged")
	wedged := time.Now()
	// Watch three ping intervals: a ping the loop's last heartbeat still
	// covers may come up to one interval after the wedge (plus delivery),
	// none after.
	deadline := wedged.Add(pingEvery + time.Second)
	watch := time.NewTimer(3 * pingEvery)
	defer watch.Stop()
	for waiting := true; waiting; {
		select {
		case n := <-d.Notices:
			if strings.Contains(n.State, "WATCHDOG=1") && n.At.After(deadline) {
				t.Fatalf("WATCHDOG=1 %v after the session loop was wedged (ping interval %v)", n.At.Sub(wedged), pingEvery)
			}
		case <-watch.C:
			waiting = false
		}
	}
	d.AwaitLine(10*time.Second, "watchdog pings withheld", "loops=session")
}

// Without credentials (never provisioned, no hub) totemd is still ready
// and pinging; SIGHUP reloads between RELOADING=1 and READY=1, applies
// the log level and names what needs a restart; SIGTERM sends STOPPING=1
// and ends cleanly.
func TestReadyOfflineReloadAndStop(t *testing.T) {
	d := startDaemon(t, false, "info")
	d.Await("READY=1", 60*time.Second)
	d.Await("WATCHDOG=1", 3*pingEvery)

	dir := filepath.Dir(d.cfg)
	d.writeConfig(t, dir, filepath.Join(dir, "creds", "t-wd.json"), "debug", "mqtt://127.0.0.1:1")
	if err := d.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.Await("RELOADING=1", 10*time.Second)
	d.Await("READY=1", 10*time.Second)
	d.AwaitLine(10*time.Second, "reload: log level applied", "level=DEBUG")
	d.AwaitLine(10*time.Second, "change only with a restart", "settings=broker.url")
	d.Await("WATCHDOG=1", 3*pingEvery) // still alive after the reload

	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.Await("STOPPING=1", 10*time.Second)
	if err := d.Wait(); err != nil {
		t.Fatalf("totemd after SIGTERM: %v", err)
	}
}
