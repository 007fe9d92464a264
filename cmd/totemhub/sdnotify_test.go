package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// totemhub under a fake systemd (a NOTIFY_SOCKET the test listens on):
// READY=1 once the embedded broker listens and the ingest starts, a
// SIGHUP reload between RELOADING=1 and READY=1, STOPPING=1 on SIGTERM.
func TestNotifyReadyReloadStop(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "totemhub")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfgPath := filepath.Join(dir, "totemhub.toml")
	writeCfg := func(level string) {
		cfg := fmt.Sprintf("state_dir = %q\n[broker]\nlisten = \"127.0.0.1:0\"\n[fleet]\ncredentials_dir = %q\nprovision = []\nconsole = \"\"\n[http]\nlisten = \"\"\n[log]\nlevel = %q\n",
			filepath.Join(dir, "state"), filepath.Join(dir, "creds"), level)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("info")
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("totemhub: " + sc.Text())
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
			cmd.Wait()
		}
	}()
	var seen []string
	await := func(state string) {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no %q from totemhub (got %q): %v", state, seen, err)
			}
			seen = append(seen, string(buf[:n]))
			if strings.Contains(string(buf[:n]), state) {
				return
			}
		}
	}
	await("READY=1")
	// Ready means the broker listens: it accepts a connection.
	var addr string
	for timeout := time.After(30 * time.Second); addr == ""; {
		select {
		case l := <-lines:
			if _, a, ok := strings.Cut(l, `msg="embedded broker listening" addr=`); ok {
				addr = strings.Fields(a)[0]
			}
		case <-timeout:
			t.Fatal("totemhub never logged its broker's address")
		}
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("ready, but the broker does not accept: %v", err)
	}
	c.Close()

	writeCfg("debug")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await("RELOADING=1")
	await("READY=1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await("STOPPING=1")
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("totemhub after SIGTERM: %v", err)
	}
}
