package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/maint"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/techset"
	"github.com/aslcns/totem/sync/update/rollout"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/paho"
	"go.etcd.io/bbolt"
)

const rigTotem = "t-ctl"

// rig is a whole installation on loopback: the broker, the hub with its
// verifier, one totem (firmware, print queue, uplink with its verifier),
// and a console's credentials with a technician and an ops key trusted by
// both.
type rig struct {
	reg         *broker.Registry
	totemPass   string
	url, creds  string
	config      string // totemctl's, with a timeout for a loaded machine
	tech, ops   string // key files
	panel       *sim.Panel
	reader      *sim.Reader
	printer     *sim.Printer
	box         *outbox.Outbox
	app         *firmware.App
	totemVerify *cmdsig.Verifier
	logs        *synctest.Log // every component's log lines
	pkg         string        // a package for job create
	gate        *maint.Gate
	audit       *audit.Store
	totemConf   string         // the totem's configuration file (config get/set)
	level       *slog.LevelVar // the totem's log level, set live by config set
}

// startRig starts the installation; seed runs on the totem's outbox
// before anything does.
func startRig(t *testing.T, ctx context.Context, seed func(*outbox.Outbox)) *rig {
	t.Helper()
	return startRigAudit(t, ctx, seed, nil)
}

// startRigAudit is startRig with prepare run on the hub's audit file
// before the hub opens it (nil: none).
func startRigAudit(t *testing.T, ctx context.Context, seed func(*outbox.Outbox), prepare func(path string)) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{creds: filepath.Join(dir, "creds", "console.json"), tech: filepath.Join(dir, "tech.key"), ops: filepath.Join(dir, "ops.key"),
		logs: &synctest.Log{}}
	log := slog.New(slog.NewTextHandler(r.logs, nil))
	var keys []cmdsig.PublicKey
	for path, role := range map[string]string{r.tech: cmdsig.Technician, r.ops: cmdsig.Ops} {
		k, err := cmdsig.Generate(role+"-1", role)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmdsig.SavePrivate(path, k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.Public())
	}

	c := synctest.Start(t, synctest.Options{Dir: dir, Logger: log, Registry: true,
		Users: []synctest.User{{Name: rigTotem, Role: creds.RoleTotem}, {Name: "console", Role: creds.RoleConsole}}})
	reg := c.Registry
	r.reg, r.url = reg, c.URL()
	totemCreds := c.Creds(rigTotem)
	r.totemPass = totemCreds.Password
	r.config = filepath.Join(dir, "totemctl.toml")
	if err := os.WriteFile(r.config, []byte("timeout = \"20s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	record := func(name string) *cmdsig.Record {
		rec, err := cmdsig.OpenRecord(filepath.Join(dir, name), cmdsig.RecordOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rec.Close() })
		return rec
	}
	fleet, err := hub.OpenFleet(filepath.Join(dir, "presence.db"), hub.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	// Fleet update jobs: the hub's rollout server on a connection of its own.
	send := rollout.NewMQTTSender()
	ro, err := rollout.Open(filepath.Join(dir, "updates"), send, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	// The technician set, signed by the hub's own key, which the totem
	// trusts as it trusts the consoles'.
	techs, err := techset.OpenStore(filepath.Join(dir, "technicians.json"))
	if err != nil {
		t.Fatal(err)
	}
	hubKey, _ := cmdsig.Generate("totemhub", cmdsig.Ops)
	fleet.Provisioned(rigTotem)
	if prepare != nil {
		prepare(filepath.Join(dir, "audit.db"))
	}
	if r.audit, err = audit.Open(filepath.Join(dir, "audit.db"), audit.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.audit.Close() })
	hubOpts := hub.Options{Audit: r.audit, Logger: log.With("subsystem", "hub"), Accounts: reg, Enroller: reg, Verifier: cmdsig.NewVerifier(cmdsig.HubTarget, keys, record("hub-commands.db")),
		Fleet: fleet, Technicians: techs, TechKey: &hubKey,
		Jobs: func(console, name string, args map[string]string) (json.RawMessage, error) {
			return ro.Command(console, name, args, keys, rollout.Fleet{All: reg.Totems, InASL: fleet.InASL})
		}}
	r.pkg = filepath.Join(dir, "totemd_2.0.0_arm64.deb")
	if err := os.WriteFile(r.pkg, bytes.Repeat([]byte("deb!"), 50000), 0o644); err != nil {
		t.Fatal(err)
	}

	if r.box, err = outbox.Open(filepath.Join(dir, "outbox.db"), nil); err != nil {
		t.Fatal(err)
	}
	seed(r.box)
	printer := sim.NewPrinter(filepath.Join(dir, "receipts"))
	r.printer = printer
	jobs, err := printq.Open(filepath.Join(dir, "jobs.db"), printer, printq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.panel, r.reader = sim.NewPanel(20, 4), sim.NewReader("sim")
	c.StartHub(hubOpts)
	var up *uplink.Uplink
	r.totemVerify = cmdsig.NewVerifier(rigTotem, keys, record("commands.db"))
	if r.gate, err = maint.New(maint.Options{Totem: rigTotem, Keys: append(slices.Clone(keys), hubKey.Public()), Store: r.box}); err != nil {
		t.Fatal(err)
	}
	r.totemConf = filepath.Join(dir, "totemd.toml")
	if err := os.WriteFile(r.totemConf, []byte(totemConf), 0o640); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.LoadTotemd(r.totemConf)
	if err != nil {
		t.Fatal(err)
	}
	r.level = new(slog.LevelVar)
	settings := firmware.NewSettings(r.totemConf, loaded, map[string]func(*config.Totemd) error{
		"log.level": func(c *config.Totemd) error { return r.level.UnmarshalText([]byte(c.Log.Level)) },
	}, log)
	app := firmware.New(firmware.Devices{Reader: r.reader, Printer: printer, Keypad: r.panel, Display: r.panel},
		firmware.Options{Totem: rigTotem, ASL: "ASL Test", Location: "Atrio", Outbox: r.box, Jobs: jobs,
			ResultWait: 2 * time.Second, Link: func() firmware.Link { return up }, Logger: log.With("subsystem", "firmware"),
			CommandsRefused: r.totemVerify.Refused, Settings: settings})
	r.app = app
	up = uplink.New(uplink.Options{Totem: rigTotem, URL: r.url, Username: totemCreds.Username, Password: totemCreds.Password,
		Outbox: r.box, Logger: log.With("subsystem", "uplink"), BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Telemetry: app.Telemetry, OnResult: app.Result, OnPolicy: app.SetPolicy, OnCommand: app.Command,
		Verifier: r.totemVerify, OnTechnicians: func(b []byte) { r.gate.SetTechnicians(b) }})

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	serveJobs := func(ctx context.Context) error {
		return rollout.Serve(ctx, ro, send, rollout.ServeOptions{URL: r.url, ClientID: "hub-upd", Username: c.HubCreds.Username,
			Password: c.HubCreds.Password, Logger: log.With("subsystem", "rollout")})
	}
	for _, run := range []func(context.Context) error{app.Run, up.Run, serveJobs} {
		wg.Add(1)
		go func() { defer wg.Done(); run(rctx) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		jobs.Close()
		r.box.Close()
	})
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	for !up.Connected() {
		if actx.Err() != nil {
			t.Fatal("the totem did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the subscriptions follow the connections
	return r
}

// totemctl runs the console as a technician types it, signing with key.
func (r *rig) totemctl(ctx context.Context, key string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"--config", r.config, "--broker", r.url, "--creds", r.creds, "--key", key}, args...), nil, &stdout, &stderr)
	return stdout.String(), err
}

// refused reports the refusal code an error of totemctl carries, if any.
func refused(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range cmdsig.Codes {
		if strings.Contains(err.Error(), "("+c+")") {
			return c
		}
	}
	return ""
}

// Every command in the tables of sync/cmdsig — the ones totemctl's cmd
// accepts and its own subcommands send — is signed by totemctl with a key
// of the role the table names, verified by the real verifier of its
// target, and run: by the firmware's App.Command through the uplink, or by
// the hub. None may come back refused (void did: unknown_command), and
// a command a new table entry brings needs a line here.
func TestEveryCommandRunsEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// An expired operation in quarantine, holding seq 1 (for void: the
	// hub holds what follows until it is voided), then a reader request
	// the hub accepted (for resend, correct, cancel).
	var stuck outbox.Entry
	r := startRig(t, ctx, func(box *outbox.Outbox) {
		now := time.Now()
		var err error
		if stuck, err = box.Enqueue(cms.KindPINChange, []byte(`{}`), now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if rep, err := box.Sweep(now); err != nil || rep.Expired != 1 {
			t.Fatalf("sweep %+v %v", rep, err)
		}
	})
	if _, err := r.totemctl(ctx, r.ops, "void", rigTotem, stuck.ID); err != nil {
		t.Fatalf("totemctl void: %v", err)
	}
	reader := r.readerRequest(t, ctx, "20261123042")

	// How totemctl sends each command; {job} is the print job sendlog
	// --print made. The totems' commands run in this order.
	job := ""
	totemCalls := []struct {
		name string
		args []string
	}{
		{"ping", []string{"cmd", rigTotem, "ping"}},
		{"void", nil}, // above, before the reader request
		{"status", []string{"cmd", rigTotem, "status"}},
		{"sendlog", []string{"sendlog", rigTotem}},
		{"sendlog_print", []string{"sendlog", rigTotem, "--print"}},
		{"jobs", []string{"cmd", rigTotem, "jobs"}},
		{"reprint", []string{"cmd", rigTotem, "reprint", "id={job}"}},
		{"resend", []string{"resend", rigTotem, reader}},
		{"resync", []string{"resync", rigTotem}},
		{"test_credentials", []string{"cmd", rigTotem, "test-credentials"}},
		{"correct", []string{"correct", rigTotem, reader, "payment=20261123043"}},
		{"cancel", []string{"cancel", rigTotem, reader, "--reason", "doppio acquisto"}},
		{"refund", []string{"refund", rigTotem, reader, "--reason", "doppio acquisto"}},
		{"config_get", []string{"config", "get", rigTotem}},
		{"config_set", []string{"config", "set", rigTotem, "session.lang=en"}},
	}
	hubCalls := map[string][]string{
		"sendlog":      {"sendlog", "--hub"},
		"sendlog_show": {"sendlog", "show", "1"},
		"report":       {"report"},
		"locks":        {"locks"},
		"unlock":       {"unlock", rigTotem},
		"lock":         {"lock", "t-new"}, // after enroll registers it
		"enroll":       {"enroll", "t-new"},
		"credentials":  {"credentials"},
		"fleet":        {"status"},
		"job_create": {"job", "create", "--package", r.pkg, "--name", "totemd", "--version", "2.0.0", "--arch", "arm64",
			"--target", "all", "--rate", "2/min", "--abort-after-failures", "50%", "--id", "job-e2e"},
		"job_status":             {"job", "status", "job-e2e"},
		"job_cancel":             {"job", "cancel", "job-e2e"},
		"technician_add":         {"technician", "add", "Tecnico", "Uno"},
		"technician_list":        {"technician", "list"},
		"technician_unlock_code": {"technician", "unlock-code", rigTotem, "Tecnico Uno"},
		"technician_remove":      {"technician", "remove", "1001"},
		"audit":                  {"audit"},
		"audit_verify":           {"audit", "verify"},
		"audit_add":              {"audit", "add", "maintenance_note", "printer roll changed"},
	}

	// The table of this test covers the verifier's tables and totemctl's
	// subcommands, no more and no less.
	var names []string
	for _, c := range totemCalls {
		names = append(names, c.name)
	}
	for _, tc := range []struct {
		target string
		names  []string
	}{{rigTotem, names}, {cmdsig.HubTarget, slices.Collect(maps.Keys(hubCalls))}} {
		table := cmdsig.Commands(tc.target)
		if tc.target != cmdsig.HubTarget {
			table = totemCommands()
		}
		for n := range table {
			if !slices.Contains(tc.names, n) {
				t.Errorf("%s: command %s of the table has no totemctl call in this test: add one", tc.target, n)
			}
		}
		for _, n := range tc.names {
			if _, ok := table[n]; !ok {
				t.Errorf("%s: totemctl sends %s, which the verifier's table lacks", tc.target, n)
			}
		}
	}
	for _, a := range actions {
		if _, ok := cmdsig.Needs(rigTotem, a); !ok {
			t.Errorf("totemctl %s sends a command the verifier's table lacks", a)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	keyOf := func(target, name string) string {
		need, _ := cmdsig.Needs(target, name)
		if need == cmdsig.Ops {
			return r.ops
		}
		return r.tech
	}
	for _, c := range totemCalls {
		if c.args == nil {
			continue
		}
		args := slices.Clone(c.args)
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], "{job}", job)
		}
		out, err := r.totemctl(ctx, keyOf(rigTotem, c.name), args...)
		if code := refused(err); code != "" {
			t.Errorf("totemctl %s: refused %s: %v", strings.Join(args, " "), code, err)
			continue
		}
		if err != nil {
			t.Errorf("totemctl %s: %v", strings.Join(args, " "), err)
			continue
		}
		if c.name == "sendlog_print" {
			m := regexp.MustCompile(`print job (\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("sendlog --print said %q", out)
			}
			job = m[1]
		}
	}
	// job_create first, status before cancel: they need its job.
	order := slices.Sorted(maps.Keys(hubCalls))
	slices.SortStableFunc(order, func(a, b string) int {
		rank := map[string]int{"job_create": -3, "job_status": -2, "job_cancel": -1,
			"technician_add": 1, "technician_list": 2, "technician_unlock_code": 3, "technician_remove": 4}
		return rank[a] - rank[b]
	})
	for _, name := range order {
		args := hubCalls[name]
		out, err := r.totemctl(ctx, keyOf(cmdsig.HubTarget, name), args...)
		if err != nil {
			t.Errorf("totemctl %s: %v (refused: %q)", strings.Join(args, " "), err, refused(err))
		}
		if name == "job_status" && !regexp.MustCompile(`(?m)^`+rigTotem+`\s+queued|^`+rigTotem+`\s+downloading`).MatchString(out) {
			t.Errorf("job status lists no %s: %q", rigTotem, out)
		}
		if name == "job_cancel" && !strings.Contains(out, "cancelled") {
			t.Errorf("job cancel said %q", out)
		}
		switch name {
		case "technician_add":
			if !strings.Contains(out, "otpauth://totp/") || !strings.Contains(out, "number 1001") || !strings.Contains(out, "█") {
				t.Errorf("technician add said %q", out)
			}
			// The totem gets the set through the broker and adopts it.
			for r.gate.Technicians() != 1 {
				if ctx.Err() != nil {
					t.Fatal("the totem never adopted the technician set")
				}
				time.Sleep(10 * time.Millisecond)
			}
		case "technician_list":
			if !strings.Contains(out, "Tecnico Uno") || strings.Contains(out, "secret") {
				t.Errorf("technician list said %q", out)
			}
		case "technician_unlock_code":
			if !regexp.MustCompile(`unlock code \d{5} \d{6}`).MatchString(out) {
				t.Errorf("unlock-code said %q", out)
			}
		case "technician_remove":
			for r.gate.Technicians() != 0 {
				if ctx.Err() != nil {
					t.Fatal("the totem never adopted the set without the technician")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}

	// The request is cancelled already: a second cancel is rejected by the
	// CMS, and totemctl fails with its code (it used to exit 0).
	if out, err := r.totemctl(ctx, r.ops, "cancel", rigTotem, reader); err == nil || !strings.Contains(err.Error(), "rejected by the CMS") {
		t.Errorf("second cancel: %v\n%s", err, out)
	}
	// The totem's status and print queue come as tables, --json raw.
	if out, err := r.totemctl(ctx, r.tech, "cmd", rigTotem, "status"); err != nil || !strings.Contains(out, "queue ") || strings.Contains(out, "{") {
		t.Errorf("cmd status: %v\n%s", err, out)
	}
	if out, err := r.totemctl(ctx, r.tech, "cmd", rigTotem, "jobs"); err != nil || !strings.Contains(out, "ID  STATE") {
		t.Errorf("cmd jobs: %v\n%s", err, out)
	}
	if out, err := r.totemctl(ctx, r.tech, "cmd", rigTotem, "status", "--json"); err != nil || !json.Valid([]byte(out)) {
		t.Errorf("cmd status --json: %v\n%s", err, out)
	}

	// The check above can fail: a technician's key asking for an ops
	// command is refused for its role, and the totem counted it.
	_, err := r.totemctl(ctx, r.tech, "cancel", rigTotem, reader)
	if code := refused(err); code != cmdsig.CodeOutOfRole {
		t.Fatalf("technician cancel: %v, want out_of_role", err)
	}
	if got := r.totemVerify.Refused(); got[cmdsig.CodeOutOfRole] != 1 || len(got) != 1 {
		t.Fatalf("totem refusals %v, want the one out_of_role", got)
	}
	// totemctl's cmd sends only what the table knows.
	if _, err := r.totemctl(ctx, r.ops, "cmd", rigTotem, "format_disk"); err == nil || refused(err) != "" {
		t.Fatalf("cmd format_disk: %v", err)
	}
	card := sim.DemoCard()
	r.logs.AssertNoPII(t, card.Info.CF, card.Info.Surname, card.Info.Name)
}

// A flood of unsigned commands — anybody with a console's or a totem's
// credentials can publish them — through the broker to the totem: every
// one is answered refused, the totem's telemetry counts them, and its log
// gets O(1) lines, not one per command.
func TestUnsignedFloodLogsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRig(t, ctx, func(*outbox.Outbox) {})
	cfg := config.DefaultTotemctl()
	cfg.Broker.URL, cfg.Broker.CredentialsFile = r.url, r.creds
	c, err := connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	const n = 300
	replies := make(chan string, n)
	c.mu.Lock()
	c.onMsg = func(p *paho.Publish) {
		if rep, err := protocol.DecodeReply(p.Payload); err == nil {
			replies <- rep.Code
		}
	}
	c.mu.Unlock()
	rt := protocol.ReplyTopic(rigTotem, c.me.Username)
	if _, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b, _ := protocol.Marshal(protocol.Command{V: protocol.Version, ID: fmt.Sprintf("flood%012d", i), Name: "ping"})
		if _, err := c.cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(rigTotem, protocol.LeafCmd), QoS: 1, Payload: b,
			Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case code := <-replies:
			if code != cmdsig.CodeUnsigned {
				t.Fatalf("reply %d: code %q", i, code)
			}
		case <-ctx.Done():
			t.Fatalf("%d replies of %d", i, n)
		}
	}
	if got := r.app.Telemetry().Refused; got[cmdsig.CodeUnsigned] != n || len(got) != 1 {
		t.Fatalf("telemetry refused %v, want %d unsigned", got, n)
	}
	if lines := strings.Count(r.logs.String(), `msg="command refused"`); lines != 1 {
		t.Fatalf("%d unsigned commands wrote %d log lines, want 1:\n%s", n, lines, r.logs.String())
	}
}

// totemConf is the rig totem's configuration file, with a comment that a
// remote change must keep.
const totemConf = `# the rig's totem
[totem]
id = "t-ctl"

[log]
level = "info" # as shipped
`

// A remote configuration change is validated by the totem's strict
// loader, written atomically and applied live (the log level); an
// invalid one is refused with the loader's error naming the file and the
// key, and the file is left byte for byte. The console commands run and
// refused at the hub, and an entry added by a console, are in the
// central audit, whose chain verifies.
func TestConfigAndAuditEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRig(t, ctx, func(*outbox.Outbox) {})

	out, err := r.totemctl(ctx, r.ops, "config", "set", rigTotem, "log.level=debug", "sync.result_wait=9s")
	if err != nil {
		t.Fatalf("config set: %v", err)
	}
	if r.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after config set log.level=debug: not applied live", r.level.Level())
	}
	if !strings.Contains(out, "applied live: log.level") || !strings.Contains(out, "needs a restart: sync.result_wait") {
		t.Errorf("config set said:\n%s", out)
	}
	written, _ := os.ReadFile(r.totemConf)
	if after, err := config.LoadTotemd(r.totemConf); err != nil || !strings.Contains(string(written), "# the rig's totem") ||
		after.Log.Level != "debug" || after.Sync.ResultWait.Duration != 9*time.Second {
		t.Errorf("file after config set:\n%s", written)
	}
	if fi, _ := os.Stat(r.totemConf); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after config set, want the file's 0640", fi.Mode().Perm())
	}

	_, err = r.totemctl(ctx, r.ops, "config", "set", rigTotem, "log.level=loud")
	if err == nil || !strings.Contains(err.Error(), r.totemConf) || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("an invalid level: %v; want the loader's error naming the file and the key", err)
	}
	if again, _ := os.ReadFile(r.totemConf); !bytes.Equal(again, written) {
		t.Fatalf("the refused change touched the file:\n%s", again)
	}
	if r.level.Level() != slog.LevelDebug {
		t.Error("the refused change moved the log level")
	}
	if _, err := r.totemctl(ctx, r.ops, "config", "set", rigTotem, "sync.nonsense=1"); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("an unknown key: %v", err)
	}
	out, err = r.totemctl(ctx, r.ops, "config", "get", rigTotem)
	if err != nil || !strings.Contains(out, `log.level`) || !strings.Contains(out, "debug") {
		t.Fatalf("config get: %v\n%s", err, out)
	}
	if strings.Contains(out, r.totemPass) {
		t.Fatal("config get shows the totem's password")
	}
	// config_set is ops': a technician's key is refused, at the totem.
	if _, err := r.totemctl(ctx, r.tech, "config", "set", rigTotem, "log.level=info"); refused(err) != cmdsig.CodeOutOfRole {
		t.Fatalf("config set with a technician's key: %v", err)
	}

	// The hub's audit: a command run, one refused (audit is ops'), an
	// entry added.
	if _, err := r.totemctl(ctx, r.tech, "audit"); refused(err) != cmdsig.CodeOutOfRole {
		t.Fatalf("audit with a technician's key: %v", err)
	}
	if _, err := r.totemctl(ctx, r.tech, "audit", "add", "maintenance_note", "roll changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.totemctl(ctx, r.ops, "locks"); err != nil {
		t.Fatal(err)
	}
	out, err = r.totemctl(ctx, r.ops, "audit", "--totem", "hub", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []protocol.AuditRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	has := func(actor, action, detail string) bool {
		return slices.ContainsFunc(recs, func(rc protocol.AuditRecord) bool {
			return strings.Contains(rc.Actor, actor) && rc.Action == action && strings.Contains(rc.Detail, detail)
		})
	}
	for _, w := range [][3]string{
		{"key:technician-1", "command_refused", "name=audit"},
		{"key:technician-1", "maintenance_note", "roll changed"},
		{"key:technician-1", "command", "name=audit_add"},
		{"key:ops-1", "command", "name=locks"},
	} {
		if !has(w[0], w[1], w[2]) {
			t.Errorf("no audit record %v in %+v", w, recs)
		}
	}
	out, err = r.totemctl(ctx, r.ops, "audit", "verify")
	if err != nil || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit verify: %v %q", err, out)
	}
}

// audit verify names the first broken record of a store changed behind
// the hub's back (a record's detail rewritten in the file), and exits
// with an error; audit lists what is there.
func TestAuditVerifyNamesBrokenRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRigAudit(t, ctx, func(*outbox.Outbox) {}, func(path string) {
		st, err := audit.Open(path, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"unlock", "enroll", "locks"} {
			if _, err := st.Append(audit.Entry{Source: audit.SourceHub, Actor: "console:ops", Action: "command", Detail: "name=" + a + " ok"}); err != nil {
				t.Fatal(err)
			}
		}
		st.Close()
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("records"))
			k := binary.BigEndian.AppendUint64(nil, 2)
			return b.Put(k, bytes.Replace(b.Get(k), []byte("name=enroll"), []byte("name=status"), 1))
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	out, err := r.totemctl(ctx, r.ops, "audit", "verify")
	if err == nil || !strings.Contains(out, "BROKEN at record 2") {
		t.Fatalf("audit verify of an altered store: %v %q", err, out)
	}
	out, err = r.totemctl(ctx, r.ops, "audit", "--action", "command", "--actor", "console:ops")
	if err != nil || !strings.Contains(out, "name=status") || !strings.Contains(out, "name=unlock") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}
