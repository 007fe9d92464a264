package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/hub/web"
	"github.com/aslcns/totem/sync/pki"
)

func userRun(t *testing.T, cfg, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	err := run(context.Background(), append([]string{"--config", cfg, "user"}, args...), strings.NewReader(stdin), &out, &errw)
	return out.String(), err
}

// `totemhub user add` writes an argon2id account with a TOTP key, prints
// the otpauth URI, refuses a second account of the same name, a bad role
// and a short password; `user code` gives the account's current code.
func TestUserAdd(t *testing.T) {
	cfg, state, _ := hubConfig(t)
	out, err := userRun(t, cfg, "a long enough password\n", "add", "anna", "--role", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "otpauth://totp/") || !strings.Contains(out, "secret=") {
		t.Fatalf("no TOTP URI printed: %s", out)
	}
	path := filepath.Join(state, web.UsersFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("accounts file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte("$argon2id$v=19$")) || bytes.Contains(b, []byte("a long enough password")) {
		t.Fatalf("accounts file holds no argon2id hash, or the password: %s", b)
	}
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"another long password\n", []string{"add", "anna", "--role", "ops"}, "exists"},
		{"another long password\n", []string{"add", "bruno", "--role", "admin"}, "role"},
		{"short\n", []string{"add", "bruno", "--role", "technician"}, "password"},
		{"another long password\n", []string{"add", "<b>", "--role", "technician"}, "name"},
	} {
		if _, err := userRun(t, cfg, c.stdin, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("user %v: %v, want an error about %s", c.args, err, c.want)
		}
	}
	code, err := userRun(t, cfg, "", "code", "anna")
	if err != nil || !regexp.MustCompile(`^\d{6}\n$`).MatchString(code) {
		t.Fatalf("user code: %q %v", code, err)
	}
	list, err := userRun(t, cfg, "", "list")
	if err != nil || !strings.HasPrefix(list, "anna\tops\t") {
		t.Fatalf("user list: %q %v", list, err)
	}
}

// [http] tls = "hub" serves HTTPS with a certificate of the hub's CA, which
// a client trusting that CA accepts.
func TestHTTPTLSFromHubCA(t *testing.T) {
	cfg := config.DefaultTotemhub()
	cfg.StateDir = t.TempDir()
	cfg.HTTP.TLS = "hub"
	tlsCfg, _, err := httpTLS(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := web.Start(web.Options{Listen: "127.0.0.1:0", TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ca, err := pki.LoadOrCreateCA(cfg.StateDir, "Totem hub CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + ws.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Fatalf("https /healthz: %d %q", resp.StatusCode, b)
	}
}

// A whole totemhub with [http] tls = "hub" serves the console over HTTPS
// behind its login, and /metrics with the console's series.
func TestHubServesConsoleOverTLS(t *testing.T) {
	dir := t.TempDir()
	conf := hubConf{dir: dir, provision: []string{"t-console"}, console: "console", httpTOML: "tls = \"hub\"\n"}
	writeConf(t, conf)
	cfgPath := conf.path()
	if _, err := userRun(t, cfgPath, "a long enough password\n", "add", "anna", "--role", "ops"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := startTestHub(t, ctx, conf)
	base := h.base
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("ops listener %s, want https", base)
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "state"), "Totem hub CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get(""); resp.StatusCode != http.StatusSeeOther || strings.Contains(body, "t-console") {
		t.Fatalf("/ without login: %d %s", resp.StatusCode, body)
	}
	if resp, body := get("login"); resp.StatusCode != 200 || !strings.Contains(body, `id="login"`) {
		t.Fatalf("/login: %d", resp.StatusCode)
	}
	if _, body := get("metrics"); !strings.Contains(body, `totemhub_console_logins_total{result="ok"} 0`) ||
		!strings.Contains(body, `totem_online{totem="t-console"} 0`) || !strings.Contains(body, `totemhub_enroll_requests_total{result="used"} 0`) {
		t.Fatalf("/metrics lacks the console's, the totem's or the enrollment's series:\n%s", body)
	}

	// Logged in, the account gets the pages; a receipt bundle comes from
	// the hub's send log (an entry it lacks is a 404, not the 501 of a
	// console without a generator); the login is in the central audit.
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	code, err := userRun(t, cfgPath, "", "code", "anna")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.PostForm(base+"login", url.Values{"user": {"anna"}, "password": {"a long enough password"}, "code": {strings.TrimSpace(code)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, body := get(""); resp.StatusCode != 200 || !strings.Contains(body, "t-console") {
		t.Fatalf("/ logged in: %d", resp.StatusCode)
	}
	if resp, _ := get("sendlog/7/receipt.zip"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("receipt bundle of a missing entry: %d, want 404", resp.StatusCode)
	}
	h.stop()
	aud, err := audit.Open(filepath.Join(dir, "state", "audit.db"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer aud.Close()
	recs, err := aud.List(audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var logins int
	for _, r := range recs {
		if r.Actor == "web:anna" && strings.Contains(r.Action, "login") {
			logins++
		}
	}
	if logins == 0 {
		t.Fatalf("the console login is not in the audit: %+v", recs)
	}
}
