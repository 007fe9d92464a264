package web

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
)

// The console's alerts follow the Prometheus rules' thresholds: offline
// over 10 minutes (not before), paper out, reader fault, an operation
// pending over an hour, outbox alarm, credentials expiring within 14 days
// or locked; a condition that ends moves to the recent list.
func TestAlertBook(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	list := []hub.TotemStatus{
		{Totem: "t-off-new", Status: protocol.Offline, Since: now.Add(-9 * time.Minute)},
		{Totem: "t-off-old", Status: protocol.Offline, Since: now.Add(-11 * time.Minute), Reason: hub.ReasonWill},
		{Totem: "t-dev", Status: protocol.Online, Devices: map[string]string{"printer": "paper_out", "reader": "gone"}},
		{Totem: "t-q", Status: protocol.Online, Queue: 3, Oldest: now.Add(-61 * time.Minute), StorageHigh: true},
		{Totem: "t-cred", Status: protocol.Online},
	}
	exp := map[string]broker.Credential{
		"t-cred": {Username: "t-cred", Expires: now.Add(13 * 24 * time.Hour), Locked: true},
		"t-q":    {Username: "t-q", Expires: now.Add(15 * 24 * time.Hour)},
	}
	b := newAlertBook()
	b.update(list, exp, now)
	active, recent := b.snapshot()
	got := map[string]bool{}
	for _, a := range active {
		got[a.Totem+"/"+a.Key] = true
	}
	want := []string{"t-off-old/a_offline", "t-dev/a_paper", "t-dev/a_reader", "t-q/a_pending", "t-q/a_storage",
		"t-cred/a_expiry", "t-cred/a_locked"}
	for _, w := range want {
		if !got[w] {
			t.Errorf("alert %s missing", w)
		}
	}
	if len(active) != len(want) || len(recent) != 0 {
		t.Fatalf("active %v, recent %v", active, recent)
	}
	// The printer is refilled: its alert moves to the recent list.
	list[2].Devices["printer"] = "ok"
	b.update(list, exp, now.Add(30*time.Second))
	active, recent = b.snapshot()
	if len(active) != len(want)-1 || len(recent) != 1 || recent[0].Key != "a_paper" || !recent[0].Cleared.Equal(now.Add(30*time.Second)) {
		t.Fatalf("after the refill: active %d, recent %+v", len(active), recent)
	}
}

// Every text key a template names is in the catalogue: a typo would show
// an empty label in both languages.
func TestTemplatesUseCatalogue(t *testing.T) {
	files, _ := filepath.Glob("templates/console/*.html")
	re := regexp.MustCompile(`(?:\.L|\$L)\.([a-z_]+)`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			if _, ok := catalogue[m[1]]; !ok {
				t.Errorf("%s: text %q is not in the catalogue", f, m[1])
			}
		}
	}
	for _, a := range totemActions {
		if _, ok := catalogue[a.Text]; !ok {
			t.Errorf("action %s: text %q missing", a.Name, a.Text)
		}
		if _, ok := cmdsig.Needs("t-1", a.Command); !ok {
			t.Errorf("action %s: command %q unknown to cmdsig's role table", a.Name, a.Command)
		}
	}
	for _, k := range []string{"a_offline", "a_paper", "a_reader", "a_pending", "a_storage", "a_quarantine", "a_clock", "a_expiry", "a_locked", "a_device"} {
		if _, ok := catalogue[k]; !ok {
			t.Errorf("alert text %s missing", k)
		}
	}
	if n < 50 {
		t.Fatalf("only %d texts found in the templates: the pattern is stale", n)
	}
}

// Over TLS the session cookie is Secure and __Host- prefixed.
func TestConsoleCookieSecureOverTLS(t *testing.T) {
	users, _ := OpenUsers(filepath.Join(t.TempDir(), UsersFile))
	k, err := users.Add("anna", cmdsig.Ops, "correct horse battery", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(Handler(Options{TLS: &tls.Config{}, Console: &Console{Users: users,
		List: func(hub.FleetFilter) []hub.TotemStatus { return nil }}}))
	srv.StartTLS()
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp := Login(t, c, srv.URL, "anna", "correct horse battery", k.Secret())
	ck := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(ck) != 1 || !ck[0].Secure || !ck[0].HttpOnly ||
		ck[0].Name != "__Host-"+sessionCookie || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/" {
		t.Fatalf("login over TLS: %d %+v", resp.StatusCode, ck)
	}
}

// The accounts file is outside input: whatever it holds, OpenUsers and a
// login over it answer without panicking, and a file with a bad entry is
// refused whole.
func FuzzUsersFile(f *testing.F) {
	f.Add([]byte(`[{"name":"anna","role":"ops","hash":"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5","totp":"JBSWY3DPEHPK3PXP","created":"2026-12-06T10:00:00Z"}]`), "pw")
	f.Add([]byte(`[{"name":"<b>","role":"root"}]`), "")
	f.Add([]byte(`{}`), "x")
	f.Add([]byte(`[{"name":"anna","role":"ops","hash":"$argon2id$v=19$m=4294967295,t=99,p=255$$","totp":"!!"}]`), "x")
	f.Fuzz(func(t *testing.T, b []byte, pw string) {
		path := filepath.Join(t.TempDir(), UsersFile)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		u, err := OpenUsers(path)
		if err != nil {
			return
		}
		list, _ := u.List()
		for _, a := range list {
			if !ValidName(a.Name) || !cmdsig.ValidRole(a.Role) {
				t.Fatalf("account %q with role %q admitted", a.Name, a.Role)
			}
			checkPassword(a.Hash, pw)
			totpStep(a.TOTP, "123456", time.Now())
		}
	})
}

// The console's watch evaluates the alerts without any page view and
// logs each start and end; it stops when told and says so.
func TestAlertWatch(t *testing.T) {
	var mu sync.Mutex
	list := []hub.TotemStatus{{Totem: "t-w", Status: protocol.Online, Devices: map[string]string{"printer": "paper_out"}}}
	var logs bytes.Buffer
	c := newConsole(Options{Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs, mu: &mu}, nil)), Console: &Console{
		List: func(hub.FleetFilter) []hub.TotemStatus {
			mu.Lock()
			defer mu.Unlock()
			return []hub.TotemStatus{{Totem: list[0].Totem, Status: list[0].Status, Devices: maps.Clone(list[0].Devices)}}
		}}})
	stop, done := make(chan struct{}), make(chan struct{})
	go c.watch(stop, done, time.Millisecond)
	wait := func(what func() bool) {
		t.Helper()
		for i := 0; !what(); i++ {
			if i > 5000 {
				t.Fatal("the watch did not evaluate")
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait(func() bool { a, _ := c.alerts.snapshot(); return len(a) == 1 })
	mu.Lock()
	list[0].Devices["printer"] = "ok"
	mu.Unlock()
	wait(func() bool { _, r := c.alerts.snapshot(); return len(r) == 1 })
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "msg=alert totem=t-w alert=a_paper") || !strings.Contains(logs.String(), `msg="alert cleared" totem=t-w`) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// ticketData is a Data with two tickets whose FSE is in different states.
type ticketData struct{ Data }

func (ticketData) Tickets() ([]refcms.Ticket, error) {
	return []refcms.Ticket{
		{ID: "HD1-000001", Level: 1, Reason: refcms.TicketCF, CF: "RSSMRA80A01H501U", OpID: "op-1", Note: "contattare <b>"},
		{ID: "HD2-000002", Level: 2, Reason: refcms.TicketTechnical, CF: "VRDLGI70B02F205X", OpID: "op-2"},
	}, nil
}

func (ticketData) FSE(cf string) (refcms.FSERecord, error) {
	if cf == "VRDLGI70B02F205X" {
		return refcms.FSERecord{CF: cf, State: cms.FSECreated}, nil
	}
	return refcms.FSERecord{CF: cf, State: cms.FSETicket}, nil
}

// The tickets page: level, state from the FSE's record, the codice
// fiscale masked (what the helpdesk needs to find the citizen, not more).
func TestTicketsPage(t *testing.T) {
	users, _ := OpenUsers(filepath.Join(t.TempDir(), UsersFile))
	k, _ := users.Add("anna", cmdsig.Ops, "correct horse battery", time.Now())
	h := Handler(Options{Console: &Console{Users: users, Data: ticketData{},
		List: func(hub.FleetFilter) []hub.TotemStatus { return nil }}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	Login(t, c, srv.URL, "anna", "correct horse battery", k.Secret())
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/tickets", nil)
	_, body := Do(t, c, req)
	for _, want := range []string{"HD1-000001", "aperto: FSE non creato", "HD2-000002", "risolto: FSE creato", "RSS************U", "contattare &lt;b&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("tickets page lacks %q", want)
		}
	}
	if strings.Contains(body, "RSSMRA80A01H501U") || strings.Contains(body, "VRDLGI70B02F205X") {
		t.Error("a whole codice fiscale on the tickets page")
	}
}

// Device states and the registry's alerts are shown in the page's
// language when known, inert when not.
func TestDeviceAndAlertTexts(t *testing.T) {
	it, en := textsByLang["it"], textsByLang["en"]
	for _, c := range []struct{ got, want string }{
		{deviceText("paper_out", it), "carta esaurita"},
		{deviceText("paper_out", en), "out of paper"},
		{deviceText("<b>\x1b", en), "<b>\uFFFD"}, // html/template escapes the markup
		{alertText("device:printer", it), "dispositivo printer"},
		{alertText("offline", en), "offline"},
		{alertText("storage", it), "archivio quasi pieno"},
		{alertText("new\x07", it), "new\uFFFD"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
