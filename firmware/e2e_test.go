package firmware_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/firmware/printq"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/stamp"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

const (
	totemID = "t-e2e"
	testPIN = "97315824" // distinctive, so the log check cannot match by chance
)

// central is the hub side: the kit's broker, registry, CMS store and hub,
// with the test totem provisioned.
type central struct {
	*synctest.Central
	t     *testing.T
	totem creds.File
	audit *audit.Store // the hub's audit, when a test opens one before startHub
	// counters, set before startHub, are the totems the hub's fleet
	// registry knows as counters enabled to reissue cards.
	counters []string
}

func startBroker(t *testing.T, dir string, log *slog.Logger, listen string) *central {
	t.Helper()
	return startBrokerOpts(t, dir, log, broker.Options{Listen: listen})
}

// startBrokerOpts starts the broker with opts (Auth and Logger filled in).
func startBrokerOpts(t *testing.T, dir string, log *slog.Logger, opts broker.Options) *central {
	t.Helper()
	k := synctest.Start(t, synctest.Options{Dir: dir, Logger: log, Registry: true, Broker: opts,
		Users: []synctest.User{{Name: totemID, Role: creds.RoleTotem}}})
	return &central{Central: k, t: t, totem: k.Creds(totemID)}
}

func (c *central) startHub() {
	c.t.Helper()
	var fleet *hub.Fleet
	if c.counters != nil {
		var err error
		if fleet, err = hub.OpenFleet(filepath.Join(c.Dir, "presence.db"), hub.FleetOptions{Counters: c.counters}); err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { fleet.Close() })
	}
	c.StartHub(hub.Options{Audit: c.audit, Fleet: fleet})
}

func (c *central) stopHub() { c.StopHub() }

func (c *central) stop() {
	c.StopHub()
	c.StopBroker()
}

// totem is the totem side: outbox, simulated devices, firmware, uplink.
type totem struct {
	t       *testing.T
	clock   *haltest.Clock // the App's clock, when the test advances it
	box     *outbox.Outbox
	reader  *sim.Reader
	printer *sim.Printer
	jobs    *printq.Queue // the App's print queue, when it has one
	panel   *sim.Panel
	app     *firmware.App
	up      *uplink.Uplink
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	seen    []string // the summary pages pageTo turned
	// What startTotem was given, for restart.
	dir, url string
	cr       creds.File
	log      *slog.Logger
}

func startTotem(t *testing.T, dir, brokerURL string, cr creds.File, log *slog.Logger) *totem {
	t.Helper()
	return startTotemTLS(t, dir, brokerURL, cr, log, nil)
}

// startTotemTLS is startTotem with a TLS configuration for an mqtts:// URL.
func startTotemTLS(t *testing.T, dir, brokerURL string, cr creds.File, log *slog.Logger, tlsCfg *tls.Config) *totem {
	t.Helper()
	return startTotemOpts(t, dir, brokerURL, cr, log, tlsCfg, nil)
}

// startTotemOpts is startTotemTLS with opts changing the firmware's
// options (nil: none).
func startTotemOpts(t *testing.T, dir, brokerURL string, cr creds.File, log *slog.Logger, tlsCfg *tls.Config, opts func(*firmware.Options)) *totem {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), &outbox.Options{Stamp: stamp.New(stamp.Options{Boot: "boot-e2e"}).Stamp})
	if err != nil {
		t.Fatal(err)
	}
	tt := &totem{t: t, box: box, reader: sim.NewReader("sim"), printer: sim.NewPrinter(filepath.Join(dir, "receipts")),
		panel: sim.NewPanel(20, 4), dir: dir, url: brokerURL, cr: cr, log: log}
	fo := firmware.Options{Totem: totemID, ASL: "ASL Test", Location: "Atrio", Outbox: box,
		Logger: log.With("subsystem", "firmware"), ResultWait: 3 * time.Second, IdleTimeout: time.Minute,
		Link: func() firmware.Link { return tt.up }}
	if opts != nil {
		opts(&fo)
	}
	tt.app = firmware.New(firmware.Devices{Reader: tt.reader, Printer: tt.printer, Keypad: tt.panel, Display: tt.panel}, fo)
	tt.up = uplink.New(uplink.Options{Totem: totemID, URL: brokerURL, TLS: tlsCfg, Username: cr.Username, Password: cr.Password,
		Outbox: box, Logger: log.With("subsystem", "uplink"), BackoffMin: 50 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, ResendAfter: time.Second,
		Telemetry: tt.app.Telemetry, OnResult: tt.app.Result, OnPolicy: tt.app.SetPolicy, OnCommand: tt.app.Command,
		OnRefused: tt.app.CommandRefused})
	ctx, cancel := context.WithCancel(context.Background())
	tt.cancel = cancel
	tt.wg.Add(2)
	go func() { defer tt.wg.Done(); tt.app.Run(ctx) }()
	go func() { defer tt.wg.Done(); tt.up.Run(ctx) }()
	t.Cleanup(tt.stop)
	return tt
}

// stop is a restart of totemd: everything closed, the outbox file kept.
func (tt *totem) stop() {
	if tt.cancel == nil {
		return
	}
	tt.cancel()
	tt.wg.Wait()
	tt.box.Close()
	tt.cancel = nil
}

func (tt *totem) wait(ctx context.Context, substr string) {
	tt.t.Helper()
	if _, err := tt.panel.WaitFor(ctx, substr); err != nil {
		tt.t.Fatal(err)
	}
}

func testCard() *sim.Card {
	c := sim.DemoCard()
	c.PIN = testPIN
	return c
}

// consentFlow does what a citizen does at the keypad for Consensi FSE.
func (tt *totem) consentFlow(ctx context.Context) {
	tt.t.Helper()
	tt.reader.Insert(testCard())
	tt.run(ctx, consentSteps)
}

func newLog() (*synctest.Log, *slog.Logger) { return synctest.NewLog() }

// checkLogs fails if any log line holds the PIN, a CF or a name.
func checkLogs(t *testing.T, lb *synctest.Log) {
	t.Helper()
	card := testCard()
	lb.AssertNoPII(t, testPIN, card.Info.CF, card.Info.Surname, card.Info.Name, "RSSMRA")
}

func TestConsentEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 30*time.Second)

	tt.consentFlow(ctx)
	screen, err := tt.panel.WaitFor(ctx, "Accolta. Protocollo:")
	if err != nil {
		t.Fatal(err)
	}
	// The hub's record.
	rec, err := c.CMS.Consents("6090012345678000")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Policy != "fse-2020" || len(rec.Consents) != 2 || !rec.Consents[0].Given || rec.Consents[1].Given ||
		rec.Channel != cms.SelfService {
		t.Fatalf("stored consents %+v", rec)
	}
	if !strings.Contains(screen, "\n"+rec.Protocol+"\n") {
		t.Errorf("screen does not show protocol %s:\n%s", rec.Protocol, screen)
	}
	// Both outcomes on the totem.
	e, err := tt.box.Get(rec.OpID)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Done || e.Result.Transport.Status != protocol.TransportReceived || e.Result.Transport.Protocol != rec.Protocol ||
		e.Result.Processing.Status != protocol.ProcessingAccepted {
		t.Fatalf("outbox entry %+v result %+v", e, e.Result)
	}
	// The receipt.
	receipts := tt.printer.Receipts()
	if len(receipts) != 1 || len(tt.printer.Files()) != 1 {
		t.Fatalf("%d receipts, %d files", len(receipts), len(tt.printer.Files()))
	}
	r := flat(receipts[0]) // as read, whatever the wrapping
	mustContain(t, "receipt", r, "Consensi FSE", "Protocollo: "+rec.Protocol, "Esito: ACCOLTA", "RSS**********01U",
		"Consultazione (i medici possono leggere il Fascicolo): SÌ",
		"Escludi pre-2020 (i dati del Fascicolo anteriori al 19/05/2020 restano nascosti): NO",
		"[QR Protocollo "+rec.Protocol+"]", "ASL Test")
	mustNotContain(t, "receipt", r, "RSSMRA80A01H501U", "ROSSI", "MARIO", testPIN, "PROVVISORIA")
	// The card leaves: nothing of the session stays on screen.
	tt.remove(ctx)
	if strings.Contains(tt.panel.Text(), rec.Protocol) {
		t.Error("protocol number left on screen")
	}
	audit, _ := c.CMS.Audit()
	if len(audit) != 1 {
		t.Fatalf("audit has %d records", len(audit))
	}
	// The send log a technician reads: both outcomes, no personal data.
	reply := tt.app.Command(ctx, &protocol.Command{V: 1, ID: "c1", Name: "sendlog"})
	var rows []map[string]any
	if !reply.OK || json.Unmarshal(reply.Data, &rows) != nil || len(rows) != 1 {
		t.Fatalf("sendlog %+v", reply)
	}
	if rows[0]["state"] != "done" || rows[0]["protocol"] != rec.Protocol || rows[0]["transport"] != "received" ||
		rows[0]["processing"] != "accepted" || strings.Contains(string(reply.Data), "RSSMRA") {
		t.Fatalf("sendlog row %v", rows[0])
	}
	finishE2E(t, c, tt, lb)
}

func TestOfflineConsentSurvivesRestart(t *testing.T) {
	lb, log := newLog()
	// The hub is down: no broker listens. Reserve an address for later.
	ctx, c := startHubDown(t, 40*time.Second, log)
	dir, url := c.Dir, c.URL()

	tt := startTotem(t, filepath.Join(dir, "totem"), url, c.totem, log)
	tt.consentFlow(ctx)
	tt.wait(ctx, "Salvata: l'esito")
	receipts := tt.printer.Receipts()
	r := flat(receipts...)
	if len(receipts) != 1 || !strings.Contains(r, "RICEVUTA PROVVISORIA") ||
		!strings.Contains(r, "Identificativo locale: "+firmware.LocalID(totemID, 1)) {
		t.Fatalf("provisional receipt:\n%s", strings.Join(receipts, "\n"))
	}
	// totemd restarts while still offline.
	tt.stop()
	tt = startTotem(t, filepath.Join(dir, "totem"), url, c.totem, log)
	if q, err := tt.box.Stats(); err != nil || q.Depth != 1 {
		t.Fatalf("after restart queue = %+v, %v", q, err)
	}
	// The hub comes back on the same address.
	c.StartBroker()
	c.startHub()
	awaitDrained(ctx, t, tt)
	rec, err := c.CMS.Consents("6090012345678000")
	if err != nil {
		t.Fatal(err)
	}
	e, err := tt.box.Get(rec.OpID)
	if err != nil || e.Seq != 1 || !e.Done || e.Result.Transport.Protocol != rec.Protocol {
		t.Fatalf("entry %+v, %v", e, err)
	}
	// Applied once, even though the totem may have sent it more than once:
	// one more copy sent on purpose, counted by the hub as a duplicate.
	dups := c.Hub().Stats().Duplicates.Load()
	if _, err := tt.up.Resend(ctx, rec.OpID); err != nil {
		t.Fatal(err)
	}
	haltest.Until(t, ctx, "the hub counted the copy as a duplicate", func() bool { return c.Hub().Stats().Duplicates.Load() > dups })
	if audit, _ := c.CMS.Audit(); len(audit) != 1 {
		t.Fatalf("applied %d times", len(audit))
	}
	tt.stop()
	c.stop()
	checkLogs(t, lb)
}

// client connects a raw MQTT 5 client with f's credentials.
func client(t *testing.T, ctx context.Context, brokerURL string, f creds.File, id string, recv func(*paho.Publish)) *autopaho.ConnectionManager {
	t.Helper()
	return synctest.Dial(t, ctx, brokerURL, f, id, func(_ *autopaho.ConnectionManager, p *paho.Publish) {
		if recv != nil {
			recv(p)
		}
	})
}

func TestDuplicateDeliveryAppliesOnce(t *testing.T) {
	ctx, c := startCentral(t, 30*time.Second)

	cm, results := resultsClient(t, ctx, c)
	payload, _ := json.Marshal(cms.ConsentRequest{
		Card:       cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
		Policy:     "fse-2020",
		Consents:   []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso"}},
		Attendance: cms.Attendance{Channel: cms.SelfService},
	})
	op := func(seq uint64) []byte {
		b, _ := protocol.Marshal(protocol.Op{V: 1, ID: strings.Repeat("0", 31) + string(rune('0'+seq)), Totem: totemID,
			Seq: seq, Kind: cms.KindConsent, Payload: payload, Created: time.Now()})
		return b
	}
	publish := func(b []byte) {
		t.Helper()
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totemID, protocol.LeafOp), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	next := func() *protocol.Result { t.Helper(); return haltest.Recv(t, ctx, results, "a result") }
	// The same op published twice.
	publish(op(1))
	publish(op(1))
	// Both copies are answered (results go out concurrently: any order),
	// one as applied, one as the stored result of a duplicate.
	r1, r2 := next(), next()
	if r1.Duplicate {
		r1, r2 = r2, r1
	}
	if !r1.Final() || r1.Duplicate || !r2.Duplicate || r2.Transport.Protocol != r1.Transport.Protocol {
		t.Fatalf("results %+v / %+v", r1, r2)
	}
	// The hub applied op 2 and died before answering: the replayed op gets
	// the stored result and is not applied again.
	var o protocol.Op
	json.Unmarshal(op(2), &o)
	applied, err := c.CMS.Apply(ctx, cms.Op{ID: o.ID, Totem: totemID, Seq: 2, Kind: o.Kind, Payload: o.Payload, Received: time.Now()})
	if err != nil || !applied.Accepted {
		t.Fatal(applied, err)
	}
	c.stopHub()
	c.startHub()
	publish(op(2))
	r3 := next()
	if !r3.Duplicate || r3.Transport.Protocol != applied.Protocol || r3.Processing.Status != protocol.ProcessingAccepted {
		t.Fatalf("replay after restart %+v", r3)
	}
	if audit, _ := c.CMS.Audit(); len(audit) != 2 {
		t.Fatalf("audit has %d records, want 2", len(audit))
	}
	if d := c.Hub().Stats().Duplicates.Load(); d != 1 { // the restarted hub counts its own
		t.Fatalf("duplicates %d", d)
	}
}

func TestHostilePayloadsDoNotStopAnyone(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 40*time.Second)
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	tt.connected(actx)
	acancel()

	// A second totem identity would be needed to forge ops: the totem's own
	// credentials on a raw client stand in for a compromised totem.
	evil := client(t, ctx, c.URL(), c.HubCreds, "evil-hub", nil)
	defer evil.Disconnect(context.Background())
	bad := [][]byte{
		[]byte("not json"),
		[]byte(`{"v":2}`),
		[]byte(`{"v":1,"id":"x"}`),
		[]byte(`{"v":1} trailing`),
		bytes.Repeat([]byte("A"), protocol.MaxPayload+1),
		[]byte(`{"v":1,"op_id":"` + strings.Repeat("a", 32) + `","seq":1,"transport":{"status":"received"},"processing":{"status":"accepted"}}`),
		// Malformed, with a name and a CF where the JSON library's
		// messages would quote them.
		[]byte(`{"v":1,"totem":"ROSSI MARIO RSSMRA80A01H501U`),
		[]byte(`{"v":1,"ROSSI MARIO RSSMRA80A01H501U":1}`),
		[]byte(`{"v":"ROSSI MARIO RSSMRA80A01H501U"}`),
		[]byte(`ROSSI MARIO RSSMRA80A01H501U`),
		[]byte(`{"v":1,"payload":{"cf":RSSMRA80A01H501U}}`),
	}
	for _, leaf := range []string{protocol.LeafResult, protocol.LeafPolicy} {
		for _, b := range bad {
			if _, err := evil.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totemID, leaf), QoS: 1, Payload: b}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Garbage ops from a second connection of a rogue client with the totem's
	// credentials would kick the real totem off (same client id), so the
	// hub's ingest is fed garbage through a throwaway totem.
	rogue, err := c.Registry.Provision("t-rogue", creds.RoleTotem, filepath.Join(c.Dir, "rogue.json"))
	if err != nil {
		t.Fatal(err)
	}
	rc := client(t, ctx, c.URL(), rogue, "t-rogue", nil)
	defer rc.Disconnect(context.Background())
	for _, b := range append(bad, mustOp(t, totemID, 1)) { // the last claims another totem
		if _, err := rc.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-rogue", protocol.LeafOp), QoS: 1, Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	for _, leaf := range []string{protocol.LeafSync, protocol.LeafState} {
		for _, b := range bad {
			if _, err := rc.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-rogue", leaf), QoS: 1, Payload: b}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Everyone still works: a real consent goes through.
	tt.consentFlow(ctx)
	tt.wait(ctx, "Accolta. Protocollo:")
	if m := c.Hub().Stats().Malformed.Load(); m < int64(len(bad)) {
		t.Fatalf("hub counted %d malformed, want ≥ %d", m, len(bad))
	}
	logs := lb.String()
	for _, want := range []string{"op dropped", "op for another totem dropped", "result dropped", "policy dropped",
		"ledger request dropped", "state dropped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the logs", want)
		}
	}
	if pol := tt.app.Policy(); pol.ID != "fse-2020" {
		t.Fatalf("policy replaced by garbage: %+v", pol)
	}
	checkLogs(t, lb)
}

func mustOp(t *testing.T, totem string, seq uint64) []byte {
	b, err := protocol.Marshal(protocol.Op{V: 1, ID: strings.Repeat("b", 32), Totem: totem, Seq: seq, Kind: "consent",
		Payload: json.RawMessage(`{}`), Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Richiesta lettore through the hub: the CMS counts the reader, the receipt
// says so with the protocol number.
func TestReaderRequestEndToEnd(t *testing.T) {
	ctx, c, tt, lb := startE2E(t, 30*time.Second)
	tt.reader.Insert(testCard())
	tt.run(ctx, readerSteps)
	tt.wait(ctx, "Accolta. Protocollo:")
	card, err := c.CMS.Card("6090012345678000")
	if err != nil || card.Readers != 1 {
		t.Fatalf("card %+v, %v", card, err)
	}
	mustContain(t, "receipt", flat(tt.printer.Receipts()...), "Richiesta lettore", "Ricevuta di pagamento: 20261123042 (4,20 €)",
		"Lettori registrati per la tessera: 1", "Esito: ACCOLTA")
	finishE2E(t, c, tt, lb)
}
