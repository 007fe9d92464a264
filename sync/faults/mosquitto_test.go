package faults

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
)

// Broker kinds the central side runs on.
const (
	mochi     = "mochi"     // the embedded broker (sync/broker)
	mosquitto = "mosquitto" // Debian's mosquitto, as totemhub --broker uses it
)

// brokers is what the table-driven tests run over.
var brokers = []string{mochi, mosquitto}

// mosq is a mosquitto process with the ACL of deploy/mosquitto and a
// password file holding the harness's users, on a loopback port that
// stays the same across restarts.
type mosq struct {
	t      *testing.T
	bin    string
	conf   string
	addr   string
	caFile string // the CA of its TLS listener's certificate
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been reaped
	out    *synctest.Log
}

// newMosq writes the configuration for users; start runs the broker.
func newMosq(t *testing.T, users ...creds.File) *mosq {
	t.Helper()
	m := &mosq{t: t, bin: synctest.NeedMosquittoPasswd(t), out: &synctest.Log{}}
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	synctest.WritePasswd(t, passwd, users...)
	acl := synctest.DeployACL(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(m.addr)
	// TLS only, as deploy/mosquitto/mosquitto.conf's listener, with a
	// certificate the hub's CA code issues for 127.0.0.1.
	certDir := filepath.Join(dir, "tls")
	ca, err := pki.LoadOrCreateCA(certDir, "test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.ServerCert(certDir, ca, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	m.caFile = filepath.Join(certDir, pki.CACertFile)
	text := fmt.Sprintf("listener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.2\n"+
		"allow_anonymous false\npassword_file %s\nacl_file %s\npersistence false\nmax_packet_size 262144\n",
		port, m.caFile, filepath.Join(certDir, pki.ServerCertFile), filepath.Join(certDir, pki.ServerKeyFile), passwd, acl)
	if os.Getuid() == 0 {
		// As root mosquitto drops to its own user, which cannot read the
		// test's private directory.
		text += "user root\n"
	}
	m.conf = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", m.out.String())
		}
	})
	return m
}

// start runs mosquitto and waits, bounded, until it listens; a port not
// yet free after a restart is tried again.
func (m *mosq) start() {
	m.t.Helper()
	for try := 0; ; try++ {
		cmd := exec.Command(m.bin, "-c", m.conf)
		cmd.Stdout, cmd.Stderr = m.out, m.out
		if err := cmd.Start(); err != nil {
			m.t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		m.cmd, m.exited = cmd, exited
		if m.listening() {
			return
		}
		m.stop()
		if try == 20 {
			m.t.Fatalf("mosquitto did not listen on %s: %s", m.addr, m.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listening waits, bounded, until the process started last accepts a
// connection; false if it exits or takes too long.
func (m *mosq) listening() bool {
	for range 100 {
		select {
		case <-m.exited:
			return false
		default:
		}
		// A TLS handshake with the CA's certificate, checked as the
		// programs check it: mosquitto speaks TLS on its port.
		cfg, err := pki.Client{CAFile: m.caFile}.Config("mqtts://" + m.addr)
		if err != nil {
			m.t.Fatal(err)
		}
		if c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", m.addr, cfg); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// stop kills mosquitto with SIGKILL, as a crash would, and waits for it.
func (m *mosq) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		m.t.Errorf("mosquitto (pid %d) did not exit after SIGKILL", m.cmd.Process.Pid)
	}
	m.cmd = nil
}
