package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/cmd/internal/sdnotify/sdnotifytest"
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
	conf := hubConf{dir: dir, noHTTP: true, logLevel: "info"}
	writeConf(t, conf)
	cfgPath := conf.path()
	p := sdnotifytest.Start(t, nil, bin, "--config", cfgPath)
	p.Await("READY=1", 60*time.Second)
	// Ready means the broker listens: it accepts a connection.
	l := p.AwaitLine(30*time.Second, `msg="embedded broker listening" addr=`)
	_, a, _ := strings.Cut(l, `msg="embedded broker listening" addr=`)
	addr := strings.Fields(a)[0]
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("ready, but the broker does not accept: %v", err)
	}
	c.Close()

	conf.logLevel = "debug"
	writeConf(t, conf)
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.Await("RELOADING=1", 60*time.Second)
	p.Await("READY=1", 60*time.Second)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.Await("STOPPING=1", 60*time.Second)
	if err := p.Wait(); err != nil {
		t.Fatalf("totemhub after SIGTERM: %v", err)
	}
}
