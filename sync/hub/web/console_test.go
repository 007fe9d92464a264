package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a settable clock: each login moves it on by a TOTP step so
// that a fresh code is valid (a code works once).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sentCommands records the commands the console sent.
type sentCommands struct {
	mu   sync.Mutex
	cmds []*protocol.Command
}

func (s *sentCommands) Command(_ context.Context, c *protocol.Command) (*protocol.Reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmds = append(s.cmds, c)
	if c.Name == "sendlog" {
		rows, _ := json.Marshal([]protocol.SendLogRow{
			{Seq: 7, OpID: "op-q", Kind: "consent", State: "quarantine: <b>bad</b> record\x1b[0m"},
			{Seq: 8, OpID: "op-p", Kind: "consent", State: "pending"},
		})
		return &protocol.Reply{V: protocol.Version, ID: c.ID, OK: true, Data: rows}, nil
	}
	return &protocol.Reply{V: protocol.Version, ID: c.ID, OK: true, Data: []byte(`{"done":true}`)}, nil
}

// onceReplay admits each id once.
type onceReplay map[string]bool

func (o onceReplay) Admit(key, id string, _, _ time.Time) error {
	if o[key+id] {
		return errors.New("replayed")
	}
	o[key+id] = true
	return nil
}

type auditLine struct{ actor, action, detail string }

// testConsole is a console over a fixed fleet list with two accounts.
type testConsole struct {
	srv     *httptest.Server
	clk     *clock
	secrets map[string]string // TOTP secret by account
	key     cmdsig.PrivateKey
	sent    *sentCommands
	mu      sync.Mutex
	audit   []auditLine
	list    []hub.TotemStatus
	stats   ConsoleStats
}

const testPassword = "correct horse battery"

func newTestConsole(t testing.TB, list []hub.TotemStatus, opts ...func(*Console)) *testConsole {
	t.Helper()
	tc := &testConsole{clk: &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}, secrets: map[string]string{},
		sent: &sentCommands{}, list: list}
	users, err := OpenUsers(filepath.Join(t.TempDir(), UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]string{"anna": cmdsig.Ops, "tecla": cmdsig.Technician} {
		k, err := users.Add(name, role, testPassword, tc.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		tc.secrets[name] = k.Secret()
	}
	if tc.key, err = cmdsig.Generate("hub-console", cmdsig.Ops); err != nil {
		t.Fatal(err)
	}
	con := &Console{Users: users, Commands: tc.sent, Key: &tc.key, Now: tc.clk.Now, Stats: &tc.stats,
		List: func(hub.FleetFilter) []hub.TotemStatus {
			tc.mu.Lock()
			defer tc.mu.Unlock()
			return append([]hub.TotemStatus(nil), tc.list...)
		},
		Events: func(totem string) []protocol.Event {
			return []protocol.Event{{V: 1, Totem: totem, Level: "warning<i>", Code: "printer_paper_out", Message: "<script>alert(3)</script>\x1b[2J"}}
		},
		Audit: func(actor, action, detail string) {
			tc.mu.Lock()
			tc.audit = append(tc.audit, auditLine{actor, action, detail})
			tc.mu.Unlock()
		}}
	for _, o := range opts {
		o(con)
	}
	tc.srv = httptest.NewServer(Handler(Options{Console: con}))
	t.Cleanup(tc.srv.Close)
	return tc
}

func (tc *testConsole) audited(action string) []auditLine {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []auditLine
	for _, a := range tc.audit {
		if a.action == action {
			out = append(out, a)
		}
	}
	return out
}

// client returns an HTTP client with a cookie jar that does not follow
// redirects.
func (tc *testConsole) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// post sends a form as the console's own page would (same origin).
func (tc *testConsole) post(t testing.TB, c *http.Client, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tc.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return Do(t, c, req)
}

func (tc *testConsole) get(t testing.TB, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tc.srv.URL+path, nil)
	return Do(t, c, req)
}

// code is name's TOTP code now.
func (tc *testConsole) code(t testing.TB, name string) string {
	c, err := totp.GenerateCode(tc.secrets[name], tc.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// login logs name in with a fresh code and returns the client.
func (tc *testConsole) login(t testing.TB, name string) *http.Client {
	t.Helper()
	tc.clk.Add(30 * time.Second)
	c := tc.client()
	resp, body := tc.post(t, c, "/login", url.Values{"user": {name}, "password": {testPassword}, "code": {tc.code(t, name)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: %d %s", name, resp.StatusCode, body)
	}
	return c
}

var hostileList = []hub.TotemStatus{
	{Totem: "t-ok", Status: protocol.Online, Version: "1.0", Location: "Atrio", Devices: map[string]string{"printer": "ok", "reader": "ok"}},
	{Totem: "t-hostile", Status: protocol.Online, Version: `<script>alert(1)</script>` + "\x1b[31m", Location: "<img src=y>\x1b[1m",
		Devices: map[string]string{"printer": `"><img src=x onerror=alert(2)>`, "reader": "\x1b]0;pwn\x07"},
		Alerts:  []string{"device:<b>x</b>"}},
	{Totem: "t-off", Status: protocol.Offline, Reason: hub.ReasonSilent},
	// Not a valid totem id (the registry takes only valid ones): shown
	// inert all the same.
	{Totem: "t-<i>id</i>\x1b[5m\"'", Status: protocol.Online},
}

// Without a session every console route answers a redirect to the login
// (pages) or 401 (the rest), never a totem's data.
func TestConsoleUnauthenticated(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.client()
	for _, path := range []string{"/", "/fleet/rows", "/totem/t-ok", "/sendlog", "/sendlog/1/receipt.zip", "/report",
		"/report.csv", "/tickets", "/alerts", "/access"} {
		resp, body := tc.get(t, c, path)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s: %d %s, want a redirect to /login", path, resp.StatusCode, resp.Header.Get("Location"))
		}
		if strings.Contains(body, "t-hostile") || strings.Contains(body, "t-off") || strings.Contains(body, "1.0") {
			t.Errorf("GET %s without login shows a totem: %s", path, body)
		}
		req, _ := http.NewRequest(http.MethodGet, tc.srv.URL+path, nil)
		req.Header.Set("HX-Request", "true")
		if resp, _ := Do(t, c, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("htmx GET %s: %d, want 401", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/totem/t-ok/action", "/access/unlock", "/access/enroll", "/logout", "/lang"} {
		resp, body := tc.post(t, c, path, url.Values{"action": {"resync"}, "name": {"t-ok"}, "totem": {"t-ok"}})
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "t-ok") {
			t.Errorf("POST %s: %d %s, want 401", path, resp.StatusCode, body)
		}
	}
	if len(tc.sent.cmds) != 0 {
		t.Fatalf("commands sent without login: %v", tc.sent.cmds)
	}
}

// Password and TOTP log in; the session cookie is HttpOnly and
// SameSite=Strict; the same code does not log in twice; a wrong code or
// password does not log in.
func TestConsoleLogin(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.client()
	tc.clk.Add(30 * time.Second)
	code := tc.code(t, "anna")
	resp, _ := tc.post(t, c, "/login", url.Values{"user": {"anna"}, "password": {testPassword}, "code": {code}, "next": {"//evil.example/x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Name != sessionCookie {
		t.Fatalf("cookie %+v", ck)
	}
	if resp, body := tc.get(t, c, "/"); resp.StatusCode != 200 || !strings.Contains(body, "t-ok") {
		t.Fatalf("fleet after login: %d", resp.StatusCode)
	}
	// The same code again, even right: refused (replay).
	c2 := tc.client()
	if resp, _ := tc.post(t, c2, "/login", url.Values{"user": {"anna"}, "password": {testPassword}, "code": {code}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed TOTP: %d", resp.StatusCode)
	}
	tc.clk.Add(30 * time.Second)
	for _, f := range []url.Values{
		{"user": {"anna"}, "password": {"wrong password!"}, "code": {tc.code(t, "anna")}},
		{"user": {"anna"}, "password": {testPassword}, "code": {"000000"}},
		{"user": {"nobody"}, "password": {testPassword}, "code": {tc.code(t, "anna")}},
		{"user": {"anna"}, "password": {testPassword}},
	} {
		if resp, body := tc.post(t, c2, "/login", f); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "t-ok") {
			t.Fatalf("login %v: %d", f, resp.StatusCode)
		}
	}
	if n := len(tc.audited("login")); n != 1 {
		t.Fatalf("%d logins audited, want 1", n)
	}
	if n := len(tc.audited("login_failed")); n != 5 {
		t.Fatalf("%d failed logins audited, want 5", n)
	}
	for _, a := range tc.audit {
		if strings.Contains(a.detail, testPassword) || strings.Contains(a.actor, "wrong") {
			t.Fatalf("a password in the audit: %+v", a)
		}
	}
	// Logout ends the session server-side.
	if resp, _ := tc.post(t, c, "/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := tc.get(t, c, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("fleet after logout: %d", resp.StatusCode)
	}
}

// After maxAccountFailures wrong logins the account is locked: the right
// password and code are refused until lockFor passes or ops unlock it.
// An address that fails maxIPFailures times is refused whatever name.
func TestConsoleBruteForceLocked(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.client()
	for i := 0; i < maxAccountFailures; i++ {
		tc.post(t, c, "/login", url.Values{"user": {"tecla"}, "password": {"guess number " + string(rune('a'+i))}, "code": {"123456"}})
	}
	tc.clk.Add(30 * time.Second)
	ok := url.Values{"user": {"tecla"}, "password": {testPassword}, "code": {tc.code(t, "tecla")}}
	if resp, _ := tc.post(t, c, "/login", ok); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("locked account with the right password: %d, want 429", resp.StatusCode)
	}
	if len(tc.audited("account_locked")) != 1 {
		t.Fatal("lock not audited")
	}
	// Ops unlocks it from the access page.
	ops := tc.login(t, "anna")
	if resp, body := tc.get(t, ops, "/access"); !strings.Contains(body, `<form method="post" action="/access/unlock" class="console-lock">tecla`) ||
		!strings.Contains(body, "Sblocca") {
		t.Fatalf("access page does not list the locked account: %d", resp.StatusCode)
	}
	if resp, _ := tc.post(t, ops, "/access/unlock", url.Values{"name": {"tecla"}, "kind": {"console"}}); resp.StatusCode != 200 {
		t.Fatalf("unlock: %d", resp.StatusCode)
	}
	tc.login(t, "tecla")
	// The address limit: many names, one address.
	for i := 0; i < maxIPFailures; i++ {
		tc.post(t, c, "/login", url.Values{"user": {"x" + strings.Repeat("y", i+1)}, "password": {"nope nope nope"}, "code": {"1"}})
	}
	tc.clk.Add(30 * time.Second)
	ok.Set("code", tc.code(t, "tecla"))
	if resp, _ := tc.post(t, c, "/login", ok); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("address over its limit: %d, want 429", resp.StatusCode)
	}
	if n := len(tc.audited("address_blocked")); n != 1 {
		t.Fatalf("address block audited %d times, want 1", n)
	}
	tc.clk.Add(ipWindow)
	ok.Set("code", tc.code(t, "tecla"))
	if resp, _ := tc.post(t, c, "/login", ok); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %d", resp.StatusCode)
	}
	// /metrics counts them: 3 logins; 20 failures (the address blocked at
	// its 20th); 7 refused (1 locked, 6 blocked); 1 lock; 1 action (the
	// unlock).
	want := `# HELP totemhub_console_logins_total Logins to the ops console, by result (ok, failed, refused while locked or blocked).
# TYPE totemhub_console_logins_total counter
totemhub_console_logins_total{result="failed"} 20
totemhub_console_logins_total{result="ok"} 3
totemhub_console_logins_total{result="refused"} 7
# HELP totemhub_console_lockouts_total Ops console accounts locked after repeated failed logins.
# TYPE totemhub_console_lockouts_total counter
totemhub_console_lockouts_total 1
# HELP totemhub_console_actions_total Audited actions taken in the ops console (technician actions, unlocks, downloads…).
# TYPE totemhub_console_actions_total counter
totemhub_console_actions_total 1
`
	if err := testutil.GatherAndCompare(NewRegistry(Sources{Hub: new(hub.Stats), Console: &tc.stats}), strings.NewReader(want),
		"totemhub_console_logins_total", "totemhub_console_lockouts_total", "totemhub_console_actions_total"); err != nil {
		t.Fatal(err)
	}
}

// A cross-site POST, with a valid session, is refused by
// CrossOriginProtection before it runs.
func TestConsoleCSRFRefused(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.login(t, "anna")
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		req, _ := http.NewRequest(http.MethodPost, tc.srv.URL+"/totem/t-ok/action", strings.NewReader("action=resync"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if resp, _ := Do(t, c, req); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin POST %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if len(tc.sent.cmds) != 0 {
		t.Fatal("a cross-site POST sent a command")
	}
	// The same from the page itself goes through.
	if resp, body := tc.post(t, c, "/totem/t-ok/action", url.Values{"action": {"resync"}}); resp.StatusCode != 200 || len(tc.sent.cmds) != 1 {
		t.Fatalf("same-origin action: %d %s", resp.StatusCode, body)
	}
}

// Markup and escape sequences a totem sent are shown as text: no element
// or attribute of theirs reaches the page, no control character either.
func TestConsoleHostileInputInert(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.login(t, "anna")
	for _, path := range []string{"/", "/fleet/rows", "/totem/t-hostile", "/alerts"} {
		resp, body := tc.get(t, c, path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		for _, bad := range []string{"<script>alert", "<img", "<b>x", "<i>id", "\x1b", "\x07", "[5m\"'"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: %q reached the page", path, bad)
			}
		}
		if path != "/alerts" && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the hostile version is not shown escaped", path)
		}
	}
	// The totem's own send log: its quarantined entries apart, inert.
	resp, body := tc.get(t, c, "/totem/t-hostile?ask=sendlog")
	q := strings.Index(body, `id="quarantine"`)
	if resp.StatusCode != 200 || q < 0 || !strings.Contains(body[q:], "op-q") || !strings.Contains(body[q:], "&lt;b&gt;bad&lt;/b&gt;") ||
		strings.Contains(body, "<b>bad") || strings.Contains(body, "\x1b") || !strings.Contains(body, `id="totem-log"`) {
		t.Fatalf("the totem's send log: %d\n%s", resp.StatusCode, body)
	}
	if len(tc.audited("totem_sendlog")) != 1 {
		t.Fatal("asking the totem's send log not audited")
	}
	if resp, _ := tc.get(t, c, "/totem/%3Cscript%3E"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a hostile totem id: %d", resp.StatusCode)
	}
}

// A technician action is signed by the hub's key in the user's role (a
// technician's command carries technician, which the totem checks) and
// audited; an action above the role is refused (403) and not sent.
func TestConsoleActionSignedInRole(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	tech := tc.login(t, "tecla")
	if resp, body := tc.post(t, tech, "/totem/t-ok/action", url.Values{"action": {"resend"}, "id": {"op-1"}, "bogus": {"x"}}); resp.StatusCode != 200 || !strings.Contains(body, "done") {
		t.Fatalf("resend: %d %s", resp.StatusCode, body)
	}
	if resp, _ := tc.post(t, tech, "/totem/t-ok/action", url.Values{"action": {"void"}, "id": {"op-1"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("void by a technician: %d, want 403", resp.StatusCode)
	}
	ops := tc.login(t, "anna")
	if resp, _ := tc.post(t, ops, "/totem/t-ok/action", url.Values{"action": {"void"}, "id": {"op-2"}}); resp.StatusCode != 200 {
		t.Fatalf("void by ops: %d", resp.StatusCode)
	}
	if len(tc.sent.cmds) != 2 {
		t.Fatalf("%d commands sent, want 2", len(tc.sent.cmds))
	}
	v := cmdsig.NewVerifier("t-ok", []cmdsig.PublicKey{tc.key.Public()}, onceReplay{})
	for i, want := range []struct{ name, role, id string }{{"resend", cmdsig.Technician, "op-1"}, {"void", cmdsig.Ops, "op-2"}} {
		cmd := tc.sent.cmds[i]
		if cmd.Name != want.name || cmd.Role != want.role || cmd.Args["id"] != want.id || len(cmd.Args) != 1 {
			t.Fatalf("command %d: %+v", i, cmd)
		}
		if err := v.Verify(cmd); err != nil {
			t.Fatalf("command %d does not verify at the totem: %v", i, err)
		}
	}
	if len(tc.audited("totem_resend")) != 1 || len(tc.audited("totem_void")) != 1 || len(tc.audited("action_refused")) != 1 {
		t.Fatalf("audit: %+v", tc.audit)
	}
	if a := tc.audited("totem_void")[0]; a.actor != "anna" || !strings.Contains(a.detail, "t-ok") || !strings.Contains(a.detail, "op-2") ||
		!strings.Contains(a.detail, "command "+tc.sent.cmds[1].ID) {
		t.Fatalf("void audited as %+v", a)
	}
}

// The receipt bundle route answers 501 until a generator is wired, then
// streams what it writes, audited; an unknown entry is 404.
func TestConsoleReceiptBundle(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.login(t, "tecla")
	SetReceiptBundle(nil)
	if resp, _ := tc.get(t, c, "/sendlog/3/receipt.zip"); resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("no generator: %d, want 501", resp.StatusCode)
	}
	SetReceiptBundle(func(w io.Writer, n uint64) error {
		if n != 3 {
			return cms.ErrNotFound
		}
		_, err := w.Write([]byte("PK\x03\x04 bundle 3"))
		return err
	})
	t.Cleanup(func() { SetReceiptBundle(nil) })
	resp, body := tc.get(t, c, "/sendlog/3/receipt.zip")
	if resp.StatusCode != 200 || body != "PK\x03\x04 bundle 3" || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("bundle: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if resp, _ := tc.get(t, c, "/sendlog/4/receipt.zip"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown entry: %d", resp.StatusCode)
	}
	if resp, _ := tc.get(t, c, "/sendlog/x/receipt.zip"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad number: %d", resp.StatusCode)
	}
	if len(tc.audited("receipt_download")) != 1 {
		t.Fatal("download not audited")
	}
	SetReceiptBundle(func(io.Writer, uint64) error { return errors.New("disk on fire") })
	if resp, body := tc.get(t, c, "/sendlog/3/receipt.zip"); resp.StatusCode != 500 || strings.Contains(body, "fire") {
		t.Fatalf("failing generator: %d %s", resp.StatusCode, body)
	}
}

// Both languages have every text, and the page switches.
func TestCatalogue(t *testing.T) {
	for k, v := range catalogue {
		if strings.TrimSpace(v[0]) == "" || strings.TrimSpace(v[1]) == "" {
			t.Errorf("%s: missing a language: %q", k, v)
		}
	}
	tc := newTestConsole(t, hostileList)
	c := tc.login(t, "anna")
	if _, body := tc.get(t, c, "/"); !strings.Contains(body, "Flotta dei totem") {
		t.Fatal("not Italian by default")
	}
	tc.post(t, c, "/lang", url.Values{"lang": {"en"}})
	if _, body := tc.get(t, c, "/"); !strings.Contains(body, "Totem fleet") || !strings.Contains(body, `lang="en"`) {
		t.Fatal("not English after the switch")
	}
}

// The vendored htmx is the file its README names.
func TestHTMXVendored(t *testing.T) {
	sum := sha256.Sum256(htmxJS)
	if hex.EncodeToString(sum[:]) != htmxSHA256 {
		t.Fatal("static/htmx.min.js is not the vendored file: update static/README.md and htmxSHA256")
	}
	readme, err := os.ReadFile("static/README.md")
	if err != nil || !bytes.Contains(readme, []byte(htmxSHA256)) || !bytes.Contains(readme, []byte("htmx.org@"+htmxVersion)) {
		t.Fatal("static/README.md does not name the vendored version and hash")
	}
}

// The fleet page sorts what needs a person first and filters.
func TestConsoleFleetOrderAndFilters(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.login(t, "anna")
	_, body := tc.get(t, c, "/")
	off, hostile, ok := strings.Index(body, `data-totem="t-off"`), strings.Index(body, `data-totem="t-hostile"`), strings.Index(body, `data-totem="t-ok"`)
	if off < 0 || !(off < hostile && hostile < ok) {
		t.Fatalf("order: off %d alert %d ok %d", off, hostile, ok)
	}
	_, body = tc.get(t, c, "/fleet/rows?status=offline")
	if !strings.Contains(body, `data-totem="t-off"`) || strings.Contains(body, `data-totem="t-ok"`) {
		t.Fatal("offline filter")
	}
	_, body = tc.get(t, c, "/fleet/rows?q=HOST")
	if !strings.Contains(body, `data-totem="t-hostile"`) || strings.Contains(body, `data-totem="t-off"`) {
		t.Fatal("search filter")
	}
}

// A session ends after idleFor without a request, and after
// maxSessionAge whatever its use.
func TestConsoleSessionExpires(t *testing.T) {
	tc := newTestConsole(t, hostileList)
	c := tc.login(t, "anna")
	tc.clk.Add(idleFor - time.Second)
	if resp, _ := tc.get(t, c, "/"); resp.StatusCode != 200 {
		t.Fatalf("before the idle timeout: %d", resp.StatusCode)
	}
	tc.clk.Add(idleFor)
	if resp, _ := tc.get(t, c, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the idle timeout: %d", resp.StatusCode)
	}
	c = tc.login(t, "anna")
	for age := time.Duration(0); age < maxSessionAge; age += idleFor / 2 {
		tc.clk.Add(idleFor / 2)
		resp, _ := tc.get(t, c, "/")
		if age+idleFor/2 < maxSessionAge-time.Minute && resp.StatusCode != 200 {
			t.Fatalf("in use after %s: %d", age, resp.StatusCode)
		}
	}
	if resp, _ := tc.get(t, c, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after %s: %d", maxSessionAge, resp.StatusCode)
	}
}
