package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/hub/web"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/eclipse/paho.golang/paho"
	"github.com/pquerna/otp/totp"
)

// browserCtx starts Debian's chromium headless with a fresh profile, or
// skips the test, saying why, where it is not installed (.ci/run and
// deploy/deps.sh install it).
func browserCtx(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium): the console's browser tests are not run")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1400, 900)}
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("chromium did not start: %v", err)
	}
	return bctx
}

// artefacts is where screenshots go: $TOTEM_TEST_ARTEFACTS, or the
// test's temporary directory.
func artefacts(t *testing.T) string {
	if d := os.Getenv("TOTEM_TEST_ARTEFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, bctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// stubBundle is a receipt bundle like Sistema TS's, made by the test: a
// PDF receipt and the CSV of the errors.
func stubBundle(w io.Writer, n uint64) error {
	z := zip.NewWriter(w)
	f, _ := z.Create(fmt.Sprintf("ricevuta-%d.pdf", n))
	fmt.Fprintf(f, "%%PDF-1.4\n%% receipt of send log entry %d\n%%%%EOF\n", n)
	f, _ = z.Create(fmt.Sprintf("errori-%d.csv", n))
	fmt.Fprint(f, "codice,messaggio\nE001,test\n")
	return z.Close()
}

// The console in a real browser: login with password and TOTP, the fleet
// page showing a totem go offline by the silence timer (htmx refresh, no
// reload), and a send log entry's receipt bundle downloaded and read.
func TestBrowserConsole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bctx := browserCtx(t, ctx)
	dir := t.TempDir()
	users, err := web.OpenUsers(filepath.Join(dir, web.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	const pw = "browser test password"
	key, err := users.Add("anna", cmdsig.Ops, pw, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	web.SetReceiptBundle(stubBundle)
	t.Cleanup(func() { web.SetReceiptBundle(nil) })
	r := newRigWith(t, ctx, rigOptions{fleet: hub.FleetOptions{TelemetryInterval: 2 * time.Second},
		console: &web.Console{Users: users, Refresh: time.Second}})
	base := "http://" + r.web.Addr()
	shots := artefacts(t)

	code, _ := totp.GenerateCode(key.Secret(), time.Now())
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"), // not logged in: sent to the login page
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("user"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-totem="t-web-1"].never`)),
	); err != nil {
		t.Fatalf("login: %v", err)
	}

	// The totem comes online (state, telemetry with paper out, one
	// operation), then falls silent: the page follows by itself.
	totemSession(t, ctx, r)
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`tr[data-totem="t-web-1"].alert`))); err != nil {
		t.Fatalf("online with an alert not shown: %v", err)
	}
	screenshot(t, bctx, shots, "console-fleet-online.png")
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`tr[data-totem="t-web-1"].offline`))); err != nil {
		t.Fatalf("offline not shown: %v", err)
	}
	status, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`tr[data-totem="t-web-1"] td.status`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "silenzioso") {
		t.Fatalf("offline status %q, want the silence reason", status)
	}
	screenshot(t, bctx, shots, "console-fleet.png")

	// The send log's receipt bundle, downloaded by the browser.
	downloads := t.TempDir()
	if err := chromedp.Do(bctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
			return err
		}),
		chromedp.Navigate(base+"/sendlog"),
		chromedp.WaitVisible(chromedp.CSS(`a.receipt`)),
	); err != nil {
		t.Fatalf("send log: %v", err)
	}
	screenshot(t, bctx, shots, "console-sendlog.png")
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`a.receipt`))); err != nil {
		t.Fatal(err)
	}
	var zipPath string
	for zipPath == "" {
		m, _ := filepath.Glob(filepath.Join(downloads, "*.zip"))
		if len(m) > 0 {
			zipPath = m[0]
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the receipt bundle was not downloaded")
		case <-time.After(50 * time.Millisecond):
		}
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	defer zr.Close()
	var pdf, rows bool
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		switch filepath.Ext(f.Name) {
		case ".pdf":
			pdf = bytes.HasPrefix(b, []byte("%PDF-"))
		case ".csv":
			recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
			rows = err == nil && len(recs) == 2
		}
	}
	if !pdf || !rows {
		t.Fatalf("bundle %s: pdf %v, csv %v", filepath.Base(zipPath), pdf, rows)
	}
}

// totemSession connects as the rig's totem and sends its birth, a
// telemetry report (paper out) and one consent operation, then stays
// connected and silent.
func totemSession(t *testing.T, ctx context.Context, r *rig) {
	t.Helper()
	c := connect(t, ctx, r, r.totem, 60)
	id := r.totem.Username
	st, _ := protocol.Marshal(protocol.State{V: 1, Totem: id, Status: protocol.Online, Since: time.Now(), Boot: "b1", Session: 1, Version: "1.4.0"})
	tm, _ := protocol.Marshal(protocol.Telemetry{V: 1, Totem: id, At: time.Now(), Queue: protocol.Queue{Depth: 1, OldestSeq: 1, Oldest: time.Now()},
		Devices: map[string]string{"printer": "paper_out", "reader": "ok"}})
	ev, _ := protocol.Marshal(protocol.Event{V: 1, Totem: id, At: time.Now(), Level: protocol.LevelWarning, Code: "printer_paper_out",
		Message: "receipt printer: paper_out"})
	op, _ := protocol.Marshal(protocol.Op{V: 1, ID: fmt.Sprintf("%032x", 1), Totem: id, Seq: 1, Kind: cms.KindConsent,
		Payload: []byte(`{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"policy":"fse-2020","consents":[{"code":"consultazione","given":true}],"channel":"self"}`),
		Created: time.Now().UTC()})
	for _, m := range []struct {
		leaf    string
		payload []byte
	}{{protocol.LeafState, st}, {protocol.LeafTelemetry, tm}, {protocol.LeafEvent, ev}, {protocol.LeafOp, op}} {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: protocol.Topic(id, m.leaf), QoS: 1, Payload: m.payload}); err != nil {
			t.Fatal(err)
		}
	}
}
