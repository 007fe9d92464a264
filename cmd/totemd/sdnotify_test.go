package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// notice is one datagram totemd sent to the fake NOTIFY_SOCKET.
type notice struct {
	state string
	at    time.Time
}

// daemon is a real totemd process under a fake systemd: a NOTIFY_SOCKET
// the test listens on, WATCHDOG_USEC set, its stderr read line by line.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	notices chan notice
	lines   chan string
	cfg     string
	done    chan struct{}
}

// startDaemon runs totemd headless (--panel none, simulated devices) with
// a private state dir and an unreachable hub (a free port); withCreds
// provisions its credentials so that the uplink itself runs (offline).
func startDaemon(t *testing.T, withCreds bool, level string) *daemon {
	t.Helper()
	bin := wedgeBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
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
	d := &daemon{t: t, notices: make(chan notice, 256), lines: make(chan string, 1024), cfg: filepath.Join(dir, "totemd.toml"),
		done: make(chan struct{})}
	d.writeConfig(t, dir, credsFile, level, "mqtt://"+synctest.FreeAddr(t))
	d.cmd = exec.Command(bin, "--config", d.cfg, "--panel", "none")
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(d.notices)
				return
			}
			d.notices <- notice{state: string(buf[:n]), at: time.Now()}
		}
	}()
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("totemd: " + sc.Text())
			select {
			case d.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
			d.cmd.Wait()
		}
		conn.Close()
	})
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

// await returns the first notice containing state, failing after limit.
func (d *daemon) await(state string, limit time.Duration) notice {
	d.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case n, ok := <-d.notices:
			if !ok {
				d.t.Fatalf("notify socket closed before %q", state)
			}
			if strings.Contains(n.state, state) {
				return n
			}
		case <-timer.C:
			d.t.Fatalf("no %q from totemd within %v", state, limit)
		}
	}
}

// awaitLine waits for a stderr line containing every one of subs.
func (d *daemon) awaitLine(limit time.Duration, subs ...string) string {
	d.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case l := <-d.lines:
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				return l
			}
		case <-timer.C:
			d.t.Fatalf("totemd never logged %q within %v", subs, limit)
		}
	}
}

// A totemd whose hub is unreachable becomes ready and pings the watchdog
// while its loops run; once the session loop is wedged the pings stop
// within one ping interval, the log says which loop stood still, and
// systemd would restart it.
func TestWatchdogStopsWhenSessionLoopWedged(t *testing.T) {
	d := startDaemon(t, true, "debug")
	d.await("READY=1", 60*time.Second)
	d.awaitLine(30*time.Second, "subsystem=uplink", "connect failed") // started, offline
	for range 2 {
		d.await("WATCHDOG=1", 3*pingEvery)
	}

	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	d.awaitLine(10*time.Second, "test hook: session loop wedged")
	wedged := time.Now()
	// Watch three ping intervals: a ping the loop's last heartbeat still
	// covers may come up to one interval after the wedge (plus delivery),
	// none after.
	deadline := wedged.Add(pingEvery + time.Second)
	watch := time.NewTimer(3 * pingEvery)
	defer watch.Stop()
	for waiting := true; waiting; {
		select {
		case n := <-d.notices:
			if strings.Contains(n.state, "WATCHDOG=1") && n.at.After(deadline) {
				t.Fatalf("WATCHDOG=1 %v after the session loop was wedged (ping interval %v)", n.at.Sub(wedged), pingEvery)
			}
		case <-watch.C:
			waiting = false
		}
	}
	d.awaitLine(10*time.Second, "watchdog pings withheld", "loops=session")
}

// Without credentials (never provisioned, no hub) totemd is still ready
// and pinging; SIGHUP reloads between RELOADING=1 and READY=1, applies
// the log level and names what needs a restart; SIGTERM sends STOPPING=1
// and ends cleanly.
func TestReadyOfflineReloadAndStop(t *testing.T) {
	d := startDaemon(t, false, "info")
	d.await("READY=1", 60*time.Second)
	d.await("WATCHDOG=1", 3*pingEvery)

	dir := filepath.Dir(d.cfg)
	d.writeConfig(t, dir, filepath.Join(dir, "creds", "t-wd.json"), "debug", "mqtt://127.0.0.1:1")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.await("RELOADING=1", 10*time.Second)
	d.await("READY=1", 10*time.Second)
	d.awaitLine(10*time.Second, "reload: log level applied", "level=DEBUG")
	d.awaitLine(10*time.Second, "change only with a restart", "settings=broker.url")
	d.await("WATCHDOG=1", 3*pingEvery) // still alive after the reload

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.await("STOPPING=1", 10*time.Second)
	<-d.done
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("totemd after SIGTERM: %v", err)
	}
}
