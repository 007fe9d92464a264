package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// The status table shows presence with its reason, backlog, outbox,
// clock, last outcome, devices and alerts.
func TestStatusTable(t *testing.T) {
	no := false
	rows := []hub.TotemStatus{
		{Totem: "t-full", Status: "online", Queue: 850, Storage: 0.85, StorageHigh: true, Quarantined: 2,
			ClockSynced: &no, Last: &hub.LastOp{Seq: 9, Kind: "consent", Transport: "received", Processing: "rejected",
				Codes: []string{"CARD_REVOKED"}}, Alerts: []string{"storage", "quarantine", "clock"}},
		{Totem: "t-old", Status: "offline", Reason: "silent", Alerts: []string{"offline"},
			CredentialsExpire: time.Date(2026, 1, 2, 12, 0, 0, 0, time.Local)},
		{Totem: "t-new", Status: "online", CredentialsExpire: time.Now().Add(30*24*time.Hour + time.Hour)},
	}
	var b bytes.Buffer
	if err := printStatus(&b, rows, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"85% ALARM (2 quarantined)", "NOT SYNCED", "#9 consent received/rejected CARD_REVOKED",
		"offline (silent)", "storage,quarantine,clock", "CREDENTIALS", "2026-01-02 EXPIRED", "(30d)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// Whatever a totem puts in its presence and telemetry reaches the
// terminal without escape sequences or control characters (issue 12,
// finding 13): it could otherwise rewrite the screen, hide rows or set
// the window title.
func TestStatusSanitisesWhatTotemsSend(t *testing.T) {
	hostile := "\x1b[2J\x1b[31mEVIL\x1b[0m\x1b]0;owned\x07\r\n\t\x08\x7f\u202e\u009b1m\xff"
	rows := []hub.TotemStatus{{Totem: "t1", Status: "online", Version: "v" + hostile,
		Devices: map[string]string{"printer" + hostile: "ok" + hostile}, Alerts: []string{"device:printer" + hostile}}}
	var b bytes.Buffer
	if err := printStatus(&b, rows, "table"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for i, r := range strings.TrimSuffix(out, "\n") {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u202e' || r == '\ufffd' {
			t.Fatalf("control character %U at %d in %q", r, i, out)
		}
	}
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "vEVIL") || strings.Contains(out, "owned") {
		t.Fatalf("table %q", out)
	}
	b.Reset()
	if err := printStatus(&b, rows, "json"); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(b.String(), 0x1b) {
		t.Fatalf("raw escape in json: %q", b.String())
	}
}

// fleetHub is a broker, a hub with a fleet registry, a console's
// credentials, key and configuration, and totem credentials.
type fleetHub struct {
	srv    *broker.Server
	cfg    string // totemctl's config file
	totems []creds.File
	fleet  *hub.Fleet
}

func startFleetHub(ctx context.Context, t *testing.T, totems int) *fleetHub {
	t.Helper()
	dir := t.TempDir()
	users := []synctest.User{{Name: "console", Role: creds.RoleConsole}}
	for i := range totems {
		users = append(users, synctest.User{Name: fmt.Sprintf("t-%03d", i), Role: creds.RoleTotem})
	}
	c := synctest.Start(t, synctest.Options{Dir: dir, Users: users})
	con := c.Creds("console")
	fh := &fleetHub{srv: c.Broker}
	var ids []string
	for _, u := range users[1:] {
		fh.totems = append(fh.totems, c.Creds(u.Name))
		ids = append(ids, u.Name)
	}
	fleet, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	fleet.Provisioned(ids...)
	fh.fleet = fleet
	key, _ := cmdsig.Generate("console", cmdsig.Technician)
	if err := cmdsig.SavePrivate(filepath.Join(dir, "console.key"), key); err != nil {
		t.Fatal(err)
	}
	rec, err := cmdsig.OpenRecord(filepath.Join(dir, "commands.db"), cmdsig.RecordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	c.StartHub(hub.Options{ClientID: "hub-s", Fleet: fleet, Verifier: cmdsig.NewVerifier(cmdsig.HubTarget, []cmdsig.PublicKey{key.Public()}, rec)})
	if err := creds.Save(filepath.Join(dir, "console.json"), con); err != nil {
		t.Fatal(err)
	}
	fh.cfg = filepath.Join(dir, "ctl.toml")
	os.WriteFile(fh.cfg, []byte(fmt.Sprintf("timeout = \"5s\"\nkey_file = %q\n[broker]\nurl = %q\ncredentials_file = %q\n",
		filepath.Join(dir, "console.key"), c.URL(), filepath.Join(dir, "console.json"))), 0o600)
	return fh
}

// totemClient connects as totem c and says it is online.
func (fh *fleetHub) totemClient(ctx context.Context, t *testing.T, c creds.File) *autopaho.ConnectionManager {
	t.Helper()
	cm := synctest.Dial(t, ctx, fh.srv.URL(), c, c.Username, nil)
	b, _ := protocol.Marshal(protocol.State{V: 1, Totem: c.Username, Status: protocol.Online, Since: time.Now().UTC(), Boot: "b", Session: 1})
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(c.Username, protocol.LeafState), QoS: 1, Retain: true, Payload: b}); err != nil {
		t.Fatal(err)
	}
	return cm
}

func ctlStatus(ctx context.Context, t *testing.T, cfg string, args ...string) []hub.TotemStatus {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(ctx, append([]string{"--config", cfg, "status", "-o", "json"}, args...), nil, &out, &errb); err != nil {
		t.Fatalf("status %v: %v\n%s", args, err, errb.String())
	}
	var rows []hub.TotemStatus
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("status output %q: %v", out.String(), err)
	}
	return rows
}

// status reads the hub's registry: it answers while a totem publishes
// telemetry every 50 ms (issue 12, finding 12: it waited for 300 ms of
// silence and never returned), lists totems never seen and offline ones,
// pages through a fleet larger than one page, and filters.
func TestStatusFromRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fh := startFleetHub(ctx, t, 250)
	chatty := fh.totemClient(ctx, t, fh.totems[0])
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; i < 2000; i++ { // bounded: 100 s at most, stopped at the end of the test
			b, _ := protocol.Marshal(protocol.Telemetry{V: 1, Totem: "t-000", At: time.Now().UTC(),
				Queue: protocol.Queue{Depth: 42}, Devices: map[string]string{"printer": "paper_out"}})
			chatty.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-000", protocol.LeafTelemetry), Retain: true, Payload: b})
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-pubDone }()
	quiet := fh.totemClient(ctx, t, fh.totems[1])
	// The quiet one leaves: its goodbye.
	b, _ := protocol.Marshal(protocol.State{V: 1, Totem: "t-001", Status: protocol.Offline, Since: time.Now().UTC(), Boot: "b", Session: 1})
	quiet.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-001", protocol.LeafState), QoS: 1, Retain: true, Payload: b})
	for ctx.Err() == nil {
		l := fh.fleet.List(hub.FleetFilter{Backlog: 1})
		if len(l) == 1 && fh.fleet.List(hub.FleetFilter{Offline: true})[0].Totem == "t-001" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	all := ctlStatus(ctx, t, fh.cfg)
	if len(all) != 250 {
		t.Fatalf("%d totems listed, want 250", len(all))
	}
	if all[0].Status != protocol.Online || all[0].Queue != 42 || all[1].Status != protocol.Offline ||
		all[1].Reason != hub.ReasonGoodbye || all[2].Status != hub.NeverSeen {
		t.Fatalf("first rows: %+v", all[:3])
	}
	if l := ctlStatus(ctx, t, fh.cfg, "--backlog", "10"); len(l) != 1 || l[0].Totem != "t-000" {
		t.Fatalf("--backlog 10: %+v", l)
	}
	if l := ctlStatus(ctx, t, fh.cfg, "--offline"); len(l) != 249 || l[0].Totem != "t-001" {
		t.Fatalf("--offline: %d rows", len(l))
	}
	if l := ctlStatus(ctx, t, fh.cfg, "--alert", "t-000"); len(l) != 1 || len(l[0].Alerts) != 1 || l[0].Alerts[0] != "device:printer" {
		t.Fatalf("--alert t-000: %+v", l)
	}
}
