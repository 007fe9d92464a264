package web_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/hub/web"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Each credential event (enrolled, rotated, expired, failed, locked,
// unlocked) adds one to its totem's totem_credential_events_total at the
// scrape; a totem with none shows every event at 0; a console, and a
// name that is no user's, get no series.
func TestMetricsCountCredentialEvents(t *testing.T) {
	dir := t.TempDir()
	reg := web.OpenTestRegistry(t, dir)
	reg.SetValidity(web.TestValidity)
	if _, err := reg.Provision("t-quiet", creds.RoleTotem, filepath.Join(dir, "t-quiet.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Provision("ops-ev", creds.RoleConsole, filepath.Join(dir, "ops.json")); err != nil {
		t.Fatal(err)
	}
	metrics := web.NewRegistry(web.Sources{Hub: new(hub.Stats), Credentials: reg.Credentials})
	want := map[string]int{}
	check := func(step string) {
		t.Helper()
		var b strings.Builder
		b.WriteString("# HELP totem_credential_events_total The totem's credential events since the hub started, by event (enrolled, rotated, expired, failed, locked, unlocked).\n")
		b.WriteString("# TYPE totem_credential_events_total counter\n")
		for _, totem := range []string{"t-ev", "t-quiet"} {
			for _, e := range broker.CredentialEvents {
				n := 0
				if totem == "t-ev" {
					n = want[e]
				}
				b.WriteString(`totem_credential_events_total{event="` + e + `",totem="` + totem + `"} ` + itoa(n) + "\n")
			}
		}
		if err := testutil.GatherAndCompare(metrics, strings.NewReader(b.String()), "totem_credential_events_total"); err != nil {
			t.Fatalf("after %s: %v", step, err)
		}
	}
	now := time.Now()
	f := web.EnrollTotem(t, reg, "t-ev", now)
	want[broker.EventEnrolled]++
	check("enrollment")

	// Strangers and consoles are not totems' events.
	reg.Check("nobody", "x", "192.0.2.1:1")
	reg.Check("ops-ev", "wrong", "192.0.2.1:1")
	check("failures of others")

	for i := 1; i <= broker.MaxFailures; i++ {
		if _, out, _ := reg.Check("t-ev", "wrong-secret", "192.0.2.7:4000"); out == broker.Accepted {
			t.Fatal("a wrong secret accepted")
		}
		want[broker.EventFailed]++
		if i == broker.MaxFailures {
			want[broker.EventLocked]++
		}
		check("failure " + itoa(i))
	}
	// Attempts while locked are refused without looking at the secret:
	// not failures.
	reg.Check("t-ev", "wrong-secret", "192.0.2.7:4000")
	check("an attempt while locked")
	if _, ok, err := reg.Unlock("t-ev"); err != nil || !ok {
		t.Fatalf("unlock: %v %v", ok, err)
	}
	want[broker.EventUnlocked]++
	check("unlock")
	if _, ok, _ := reg.Unlock("t-ev"); ok {
		t.Fatal("unlocked twice")
	}
	check("an unlock of a user not locked")

	next := strings.Repeat("n", 40)
	if _, _, err := reg.Rotate("t-ev", next, now); err != nil {
		t.Fatal(err)
	}
	check("a rotation not yet confirmed")
	if _, out, _ := reg.Check("t-ev", next, "192.0.2.7:4000"); out != broker.Accepted {
		t.Fatalf("the rotated secret: %v", out)
	}
	want[broker.EventRotated]++
	check("the login that confirms the rotation")
	if _, out, _ := reg.Check("t-ev", f.Password, "192.0.2.7:4000"); out == broker.Accepted {
		t.Fatal("the old secret accepted after the rotation")
	}
	want[broker.EventFailed]++
	check("the old secret")

	// A rotation recorded long ago: its secret expired before a login.
	stale := strings.Repeat("s", 40)
	if _, _, err := reg.Rotate("t-ev", stale, now.Add(-100*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := reg.Check("t-ev", stale, "192.0.2.7:4000"); out != broker.Expired {
		t.Fatalf("an expired secret: %v", out)
	}
	want[broker.EventExpired]++
	check("an expired secret")
}

func itoa(n int) string { return strconv.Itoa(n) }
