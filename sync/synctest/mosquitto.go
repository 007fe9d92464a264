package synctest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Mosquitto is a private Debian mosquitto with its dynamic-security
// plugin (mosquitto_ctrl dynsec init: only the admin client exists), on a
// free loopback port, plain MQTT, in the test's temporary directory;
// t.Cleanup stops it by its pid.
type Mosquitto struct {
	Addr          string // host:port
	AdminUser     string // the plugin's admin client
	AdminPassword string
	// AdminPasswordFile holds AdminPassword (0600), for totemhub's
	// [broker] dynsec_password_file.
	AdminPasswordFile string
	Log               string // mosquitto's log file

	cmd    *exec.Cmd
	exited chan struct{}
}

// MosquittoAdmin is the dynamic-security admin client's username.
const MosquittoAdmin = "dynsec-admin"

// mosquittoPlugin finds the plugin Debian's mosquitto ships.
func mosquittoPlugin() string {
	m, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	m2, _ := filepath.Glob("/usr/lib/mosquitto_dynamic_security.so")
	if m = append(m, m2...); len(m) > 0 {
		return m[0]
	}
	return ""
}

// StartMosquitto starts a Mosquitto. Without mosquitto and its plugin
// installed the test is skipped, or fails under CI (.ci/run installs
// them).
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err == nil {
		_, err = exec.LookPath("mosquitto_ctrl")
	}
	plugin := mosquittoPlugin()
	if err != nil || plugin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto with its dynamic-security plugin is not installed (.ci/run installs it)")
		}
		t.Skip("mosquitto or its dynamic-security plugin not installed (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	m := &Mosquitto{AdminUser: MosquittoAdmin, AdminPassword: hex.EncodeToString(b), Log: filepath.Join(dir, "mosquitto.log"),
		AdminPasswordFile: filepath.Join(dir, "admin.pw")}
	if err := os.WriteFile(m.AdminPasswordFile, []byte(m.AdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "dynsec.json")
	if out, err := exec.Command("mosquitto_ctrl", "dynsec", "init", conf, m.AdminUser, m.AdminPassword).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_ctrl dynsec init: %v %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(m.Addr)
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npersistence false\nmax_packet_size 262144\n"+
		"set_tcp_nodelay true\nplugin %s\nplugin_opt_config_file %s\nlog_dest file %s\n", port, plugin, conf, m.Log)
	if os.Getuid() == 0 {
		text += "user root\n" // as root mosquitto drops to its own user, which cannot read the temp dir
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, "-c", path)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(m.Stop)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", m.Addr)
		if err == nil {
			c.Close()
			return m
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(m.Log)
			t.Fatalf("mosquitto did not listen on %s: %s", m.Addr, b)
		}
	}
}

// URL is the broker's mqtt:// URL.
func (m *Mosquitto) URL() string { return "mqtt://" + m.Addr }

// Stop kills mosquitto (by its pid) and waits for it.
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}
