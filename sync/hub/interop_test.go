package hub_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
)

// mosquitto starts Debian's mosquitto with deploy/mosquitto's
// configuration and ACL and the given users, on free loopback ports, and
// stops it at the end. Clients use its TLS listener, with a certificate
// the hub's CA code issues; it returns the URL and the clients' TLS
// configuration, built as the programs build it.
func mosquitto(t *testing.T, users map[string]string) (string, *tls.Config) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto is not installed (.ci/run installs it)")
		}
		t.Skip("mosquitto not installed (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	for u, p := range users {
		args := []string{"-b", passwd, u, p}
		if _, err := os.Stat(passwd); err != nil {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
	}
	os.Chmod(passwd, 0o600)
	acl, err := filepath.Abs("../../deploy/mosquitto/acl")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	certDir := filepath.Join(dir, "tls")
	ca, err := pki.LoadOrCreateCA(certDir, "test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.ServerCert(certDir, ca, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(certDir, pki.CACertFile)
	// The shipped configuration, its files and ports moved into the test:
	// a line of it mosquitto refuses, or a TLS listener that does not
	// work, fails here.
	shipped, err := os.ReadFile("../../deploy/mosquitto/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, plainPort, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	text := string(shipped)
	for _, r := range [][2]string{
		{"\nlistener 8883\n", "\nlistener " + port + " 127.0.0.1\n"},
		{"\nlistener 1883 127.0.0.1\n", "\nlistener " + plainPort + " 127.0.0.1\n"},
		{" /etc/mosquitto/totem.passwd\n", " " + passwd + "\n"},
		{" /etc/mosquitto/totem.acl\n", " " + acl + "\n"},
		{" /etc/mosquitto/certs/ca.pem\n", " " + caFile + "\n"},
		{" /etc/mosquitto/certs/server.pem\n", " " + filepath.Join(certDir, pki.ServerCertFile) + "\n"},
		{" /etc/mosquitto/certs/server.key\n", " " + filepath.Join(certDir, pki.ServerKeyFile) + "\n"},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("deploy/mosquitto/mosquitto.conf lacks %q", strings.TrimSpace(r[0]))
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#") && strings.Contains(line, "/etc/") {
			t.Fatalf("deploy/mosquitto/mosquitto.conf names a file this test does not provide: %s", line)
		}
	}
	text += "persistence false\n"
	if os.Getuid() == 0 {
		// As root mosquitto drops to its own user, which cannot read the
		// test's private directory.
		text += "user root\n"
	}
	os.WriteFile(conf, []byte(text), 0o600)
	var out synctest.Log
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	url := "mqtts://" + addr
	cfg, err := pki.Client{CAFile: caFile}.Config(url)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("mosquitto did not listen: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, cfg
}

// Two hub instances share the ingest through mosquitto: every operation of
// a totem's backlog is applied exactly once and in order, and both
// instances take part.
func TestMosquittoTwoHubs(t *testing.T) {
	const n = 300
	url, tlsCfg := mosquitto(t, map[string]string{"totemhub": "hub-secret", "t-mq": "totem-secret"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	store, err := refcms.Open(filepath.Join(dir, "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	box := synctest.QueuedOutboxAt(t, filepath.Join(dir, "outbox.db"), n)
	hctx, hcancel := context.WithCancel(ctx)
	hubs := make([]*hub.Hub, 2)
	errc := make(chan error, 3)
	for i := range hubs {
		hubs[i] = hub.New(hub.Options{URL: url, TLS: tlsCfg, ClientID: fmt.Sprintf("totemhub-%d", i), Username: "totemhub",
			Password: "hub-secret", Backend: store})
		go func(h *hub.Hub) { errc <- h.Run(hctx) }(hubs[i])
		if err := hubs[i].AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // shared subscriptions follow the connections
	up := uplink.New(uplink.Options{Totem: "t-mq", URL: url, TLS: tlsCfg, Username: "t-mq", Password: "totem-secret",
		Outbox: box, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, ResendAfter: 2 * time.Second})
	go func() { errc <- up.Run(hctx) }()
	start := time.Now()
	drained(ctx, t, box, "")
	elapsed := time.Since(start)
	hcancel()
	for range 3 {
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != n {
		t.Fatalf("%d operations applied, want %d", len(audit), n)
	}
	seen := map[string]bool{}
	for i, a := range audit {
		if a.Seq != uint64(i+1) || !a.Accepted || seen[a.OpID] {
			t.Fatalf("audit[%d] = %+v (dup %v)", i, a, seen[a.OpID])
		}
		seen[a.OpID] = true
	}
	a, b := hubs[0].Stats(), hubs[1].Stats()
	t.Logf("%d ops in %v; hub0 applied %d dup %d gaps %d; hub1 applied %d dup %d gaps %d", n, elapsed.Round(time.Millisecond),
		a.Applied.Load(), a.Duplicates.Load(), a.Gaps.Load(), b.Applied.Load(), b.Duplicates.Load(), b.Gaps.Load())
	if a.Applied.Load() == 0 || b.Applied.Load() == 0 {
		t.Fatal("one hub instance applied nothing: the shared subscription did not split the load")
	}
	if a.Applied.Load()+b.Applied.Load() != n {
		t.Fatalf("applied %d in all", a.Applied.Load()+b.Applied.Load())
	}
}

// mosquitto's ACL keeps a totem out of another totem's subtree, as the
// embedded broker does.
func TestMosquittoACLFile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/mosquitto/acl")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "pattern") && !strings.Contains(l, "totem/v1/%u/") {
			t.Errorf("a pattern outside the totem's own subtree: %q", l)
		}
		if strings.Contains(l, "#") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			t.Errorf("a multi-level wildcard grant: %q", l)
		}
	}
}
