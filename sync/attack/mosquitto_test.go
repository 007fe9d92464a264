package attack

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/synctest"
)

// mosq is Debian's mosquitto with deploy/mosquitto's ACL, for the hub's
// --broker mode.
type mosq struct {
	bin, dir, addr string
	users          []creds.File
	cmd            *exec.Cmd
	exited         chan struct{}
	logPath        string
}

// newMosq prepares a mosquitto for addr; start runs it once the users are
// known. Without mosquitto the test is skipped, except in CI, which
// installs it.
func newMosq(t *testing.T, dir, addr string) *mosq {
	t.Helper()
	bin := synctest.NeedMosquittoPasswd(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := &mosq{bin: bin, dir: dir, addr: addr, logPath: logName(t, "mosquitto")}
	t.Cleanup(m.stop) // after the hub's: cleanups run last first
	return m
}

func (m *mosq) start(t *testing.T) {
	t.Helper()
	passwd := filepath.Join(m.dir, "passwd")
	synctest.WritePasswd(t, passwd, m.users...)
	acl := synctest.DeployACL(t)
	_, port, _ := net.SplitHostPort(m.addr)
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\npersistence false\nmax_packet_size 262144\n",
		port, passwd, acl)
	if os.Getuid() == 0 {
		// As root mosquitto drops to its own user, which cannot read the
		// test's private directory.
		text += "user root\n"
	}
	conf := filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	m.cmd = exec.Command(m.bin, "-c", conf)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.exited) }()
	if err := waitFor(5*time.Second, func() bool {
		c, err := net.Dial("tcp", m.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		b, _ := os.ReadFile(m.logPath)
		t.Fatalf("mosquitto did not listen on %s: %s", m.addr, b)
	}
}

func (m *mosq) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}
