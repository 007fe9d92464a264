package web_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub/web"
)

// The console's pages over a real hub and reference CMS after one
// operation: the send log with its filters, the totem page, the
// Reportistica with its CSV and chart, the tickets and the credentials.
func TestConsolePagesOverRealHub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	users, err := web.OpenUsers(filepath.Join(t.TempDir(), web.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := users.Add("anna", cmdsig.Ops, "pages test password", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, ctx, rigOptions{console: &web.Console{Users: users}})
	base := "http://" + r.web.Addr()
	totemSession(t, ctx, r)
	for ctx.Err() == nil {
		if rows, _, _ := r.store.SendLog(cms.SendLogFilter{}); len(rows) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	web.Login(t, c, base, "anna", "pages test password", key.Secret())
	page := func(path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		resp, body := web.Do(t, c, req)
		return resp.StatusCode, body, resp.Header
	}
	day := time.Now().Format(time.DateOnly)
	for _, p := range []struct{ path, want, not string }{
		{"/sendlog", "POLICY_MISMATCH", ""},
		{"/sendlog?totem=t-web-1&outcome=rejected&from=" + day + "&to=" + day, `/sendlog/1/receipt.zip`, ""},
		{"/sendlog?outcome=accepted", "Nessuna riga", "receipt.zip"},
		{"/sendlog?totem=t-web-never", "Nessuna riga", "receipt.zip"},
		{"/totem/t-web-1", "POLICY_MISMATCH", ""},
		{"/totem/t-web-1", "receipt printer: paper_out", ""},
		{"/report", "<svg", ""},
		{"/report?by_day=1&totem=t-web-1", day, ""},
		{"/report?totem=t-web-never", "Nessuna riga", ""},
		{"/tickets", "Ticket", "RSSMRA80A01H501U"},
		{"/access", "t-web-1", ""},
		{"/alerts", "carta esaurita", ""},
	} {
		code, body, _ := page(p.path)
		if code != 200 || !strings.Contains(body, p.want) || (p.not != "" && strings.Contains(body, p.not)) {
			t.Errorf("%s: %d, want %q and not %q:\n%s", p.path, code, p.want, p.not, body)
		}
	}
	// The CSV link keeps the page's filters; the live refresh the fleet's.
	if _, body, _ := page("/report?totem=t-web-1&by_day=1&kind=consent"); !strings.Contains(body, `href="/report.csv?by_day=1&amp;kind=consent&amp;totem=t-web-1"`) {
		t.Errorf("report: CSV link:\n%s", body)
	}
	if _, body, _ := page("/?status=alert&q=a%26b"); !strings.Contains(body, `hx-get="/fleet/rows?q=a%26b&amp;status=alert"`) {
		t.Errorf("fleet: refresh URL:\n%s", body)
	}
	code2, body, h := page("/report.csv?totem=t-web-1")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code2 != 200 || err != nil || len(recs) != 2 || recs[1][1] != "t-web-1" || recs[1][5] != "1" || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Fatalf("report.csv: %d %v %q", code2, err, body)
	}
}
