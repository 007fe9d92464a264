package attack

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// onBroker names the broker in a table row when it is not the embedded one.
func onBroker(kind string) string {
	if kind == mochi {
		return ""
	}
	return " (" + kind + ")"
}

// onBothBrokers runs test as a subtest on the embedded broker and on
// mosquitto, named after the broker.
func onBothBrokers(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range []string{mochi, mosquitto} {
		t.Run(kind, func(t *testing.T) { test(t, kind) })
	}
}

// nextIDs guesses the ids that follow id the way an attacker would: an
// op id was the outbox's 8-byte salt and the big-endian sequence number,
// so the next ones were the same salt and seq+1…. Once ids are random
// this is a guess that misses.
func nextIDs(id string, n int) []string {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 16 {
		return nil
	}
	seq := binary.BigEndian.Uint64(raw[8:])
	var ids []string
	for i := 1; i <= n; i++ {
		binary.BigEndian.PutUint64(raw[8:], seq+uint64(i))
		ids = append(ids, hex.EncodeToString(raw))
	}
	return ids
}

// results subscribes cl (a totem) to its own result topic and counts what
// arrives.
type results struct {
	n    atomic.Int64
	last atomic.Int64 // unix nanos of the last result
	mu   sync.Mutex
	by   map[string][]*protocol.Result
}

func (rs *results) on(p *paho.Publish) {
	rs.n.Add(1)
	rs.last.Store(time.Now().UnixNano())
	res, err := protocol.DecodeResult(p.Payload)
	if err != nil {
		return
	}
	rs.mu.Lock()
	rs.by[res.OpID] = append(rs.by[res.OpID], res)
	rs.mu.Unlock()
}

// quiet waits until no result came for d, at most max.
func (rs *results) quiet(d, max time.Duration) {
	end := time.Now().Add(max)
	for time.Now().Before(end) {
		last := time.Unix(0, rs.last.Load())
		if rs.n.Load() > 0 && time.Since(last) > d {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resultsOf dials as totem id (the stolen credential) subscribed to its
// own result topic, counting what arrives.
func (h *hubProc) resultsOf(t *testing.T, id string) (*client, *results) {
	t.Helper()
	rs := &results{by: map[string][]*protocol.Result{}}
	att := h.attacker(t, id, id, rs.on)
	subscribe(t, att, protocol.Topic(id, protocol.LeafResult))
	return att, rs
}

func subscribe(t *testing.T, cl *client, topics ...string) {
	t.Helper()
	var subs []paho.SubscribeOptions
	for _, tp := range topics {
		subs = append(subs, paho.SubscribeOptions{Topic: tp, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		t.Fatal(err)
	}
}

// TestForeignOpIDs covers finding 3: op ids were predictable and the hub
// deduplicated by id alone, so demo-02 sending demo-01's next ids got
// demo-01's citizens rejected SEQ_REUSED and its queue jammed for good.
// demo-02 sends the ids that follow demo-01's last one (exact today, a
// guess once ids are random) and replays the ids it saw of demo-01's
// earlier operations: every operation of demo-01 applies exactly once,
// accepted, and its queue drains.
func TestForeignOpIDs(t *testing.T) {
	onBothBrokers(t, foreignOpIDs)
}

func foreignOpIDs(t *testing.T, kind string) {
	r := record(t, "03 demo-02 sends demo-01's next and past op ids"+onBroker(kind))
	h := startHub(t, hubOpts{mosquitto: kind == mosquitto})
	victim := h.connectedLegit(t, "demo-01")
	for range 3 {
		if _, _, err := victim.op(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	seen := victim.opIDs() // what a sniffer saw on the wire
	att, rs := h.resultsOf(t, "demo-02")
	m := h.monitor()
	forged := append(nextIDs(seen[len(seen)-1], 4), seen...)
	for i, id := range forged {
		if _, err := att.publish(protocol.Topic("demo-02", protocol.LeafOp), opEnvelope(id, "demo-02", uint64(i+1)), false); err != nil {
			t.Fatalf("forged op %d: %v", i+1, err)
		}
	}
	rs.quiet(time.Second, 10*time.Second)
	// The forger's own sequence is not jammed either: an id met again is
	// refused to its sender only, and never finally while the sender's
	// seq is still to come (a refusal that left it unconsumed, as dedup by
	// id alone gave, left a hole nothing after it could pass). Its next
	// operation, under a fresh id, applies.
	const fresh = "5eed0000000000000000000000000001"
	if _, err := att.publish(protocol.Topic("demo-02", protocol.LeafOp), opEnvelope(fresh, "demo-02", uint64(len(forged)+1)), false); err != nil {
		t.Fatalf("demo-02's own op: %v", err)
	}
	var own *protocol.Result
	waitFor(10*time.Second, func() bool {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if got := rs.by[fresh]; len(got) > 0 {
			own = got[len(got)-1]
		}
		return own != nil && (own.Processing.Status == protocol.ProcessingAccepted || own.Processing.Status == protocol.ProcessingRejected)
	})
	// demo-01 goes on: its next operations are the ids just forged.
	w := victim.keepOperating()
	time.Sleep(1500 * time.Millisecond)
	f := m.stop()
	r.fig("forged %d", len(forged))
	r.hubFigs(f)
	r.legitFigs(t, w)
	if own == nil || own.Processing.Status != protocol.ProcessingAccepted {
		failf(t, "demo-02's op seq %d after its forged ones: %+v, want accepted (its sequence jammed)", len(forged)+1, own)
	}
	if err := waitFor(10*time.Second, func() bool {
		q, err := victim.box.Stats()
		return err == nil && q.Depth == 0
	}); err != nil {
		q, _ := victim.box.Stats()
		failf(t, "demo-01's queue jammed at depth %d (oldest seq %d)", q.Depth, q.OldestSeq)
	}
	ids := victim.opIDs()
	h.stop()
	store, err := refcms.Open(filepath.Join(h.stateDir, "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	applied := map[string]int{}
	for _, a := range audit {
		if a.Totem != "demo-01" {
			continue
		}
		applied[a.OpID]++
		if !a.Accepted {
			failf(t, "demo-01's op seq %d rejected %v", a.Seq, a.Codes)
		}
	}
	for _, id := range ids {
		if applied[id] != 1 {
			failf(t, "demo-01's op %s applied %d times, want once", id, applied[id])
		}
	}
	r.fig("demo-01 applied %d/%d", len(applied), len(ids))
}

// TestSyncFloodConsole covers finding 6: resync requests and console
// commands shared 4 slots, and a resync flood from one totem made half of
// the console's `totemctl sendlog --hub` calls fail. Every call succeeds
// during the flood.
func TestSyncFloodConsole(t *testing.T) {
	r := record(t, "06 sync flood vs totemctl sendlog --hub")
	h := startHub(t, hubOpts{})
	victim := h.connectedLegit(t, "demo-01")
	if _, _, err := victim.op(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	w := victim.keepOperating()
	m := h.monitor()
	att := h.attacker(t, "demo-02", "demo-02", nil)
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := protocol.Marshal(protocol.LedgerRequest{V: protocol.Version, ID: fmt.Sprintf("f%d-%d", g, i), From: 1, Max: protocol.MaxLedger})
				if _, err := att.publish(protocol.Topic("demo-02", protocol.LeafSync), req, false); err == nil {
					sent.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the flood is on
	// Up to 20 calls; 3 failures are proof enough (each costs the
	// console's 4 s timeout).
	var failed []string
	calls := 0
	start := time.Now()
	for i := 0; i < 20 && len(failed) < 3; i++ {
		calls++
		out, err := h.ctl(t, 8*time.Second, "sendlog", "--hub", "--max", "5", "-o", "json")
		if err != nil {
			failed = append(failed, fmt.Sprintf("call %d: %v: %s", i+1, err, strings.TrimSpace(out)))
		}
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	f := m.stop()
	r.fig("sync requests %d", sent.Load())
	r.fig("console calls %d in %s", calls, took.Round(time.Millisecond))
	r.fig("console failures %d", len(failed))
	r.hubFigs(f)
	r.legitFigs(t, w)
	if len(failed) > 0 {
		failf(t, "%d of %d totemctl sendlog --hub calls failed during a sync flood; first: %s", len(failed), calls, failed[0])
	}
}

// TestReplayGrowth covers finding 7: every duplicate, SEQ_REUSED and gap
// refusal was a send-log record and a log line; 5 000 replays grew cms.db
// by 16 MiB. 5 000 replays from demo-02, a third each of its applied op
// (duplicate), another id on the same seq (SEQ_REUSED) and an op far
// ahead (gap): cms.db grows by less than 1 MiB and the hub writes at most
// 100 log lines.
func TestReplayGrowth(t *testing.T) {
	onBothBrokers(t, replayGrowth)
}

func replayGrowth(t *testing.T, kind string) {
	r := record(t, "07 5000 replays: duplicate, SEQ_REUSED, gap"+onBroker(kind))
	h := startHub(t, hubOpts{mosquitto: kind == mosquitto})
	victim := h.connectedLegit(t, "demo-01")
	att, rs := h.resultsOf(t, "demo-02")
	const id = "0123456789abcdef0123456789abcdef"
	op := opEnvelope(id, "demo-02", 1)
	if _, err := att.publish(protocol.Topic("demo-02", protocol.LeafOp), op, false); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(10*time.Second, func() bool { return rs.n.Load() > 0 }); err != nil {
		t.Fatal("no result for demo-02's first op")
	}
	size0 := h.cmsSize()
	w := victim.keepOperating()
	m := h.monitor()
	const n = 5000
	replays := [][]byte{op,
		opEnvelope("fedcba9876543210fedcba9876543210", "demo-02", 1),   // SEQ_REUSED
		opEnvelope("00112233445566778899aabbccddeeff", "demo-02", 100)} // gap
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				if _, err := att.publish(protocol.Topic("demo-02", protocol.LeafOp), replays[i%3], false); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	rs.quiet(2*time.Second, 30*time.Second)
	f := m.stop()
	growth := h.cmsSize() - size0
	r.fig("replays %d", n)
	r.fig("results %d", rs.n.Load())
	r.fig("cms.db %d KiB + %d KiB", size0>>10, growth>>10)
	r.hubFigs(f)
	r.legitFigs(t, w)
	if failed.Load() > 0 {
		t.Logf("%d replays not acknowledged by the broker", failed.Load())
	}
	if growth >= 1<<20 {
		failf(t, "cms.db grew by %d KiB for %d replays (bound 1 MiB)", growth>>10, n)
	}
	if f.logLines > 100 {
		failf(t, "the hub wrote %d log lines for %d replays (bound 100)", f.logLines, n)
	}
}

// Malformed envelopes carrying a citizen's name, codice fiscale and a
// PIN-like field, in every shape that reaches a decoder's error message:
// unknown field, wrong type, broken JSON, bad values. TestMain reads every
// log of the suite for them afterwards (finding 11).
func malformed() [][]byte {
	return [][]byte{
		[]byte(`{"v":1,"ROSSI MARIO RSSMRA80A01H501U":"` + attackPIN + `"}`),
		[]byte(`{"v":"ROSSI MARIO RSSMRA80A01H501U","pin":"` + attackPIN + `"}`),
		[]byte(`{"v":1,"id":"RSSMRA80A01H501U","totem":"ROSSI MARIO","seq":"` + attackPIN + `","kind":"consent"}`),
		[]byte(`{"v":1,"id":"0123456789abcdef0123456789abcdef","totem":"demo-02","seq":1,"kind":"ROSSI MARIO RSSMRA80A01H501U","payload":{"pin":"` + attackPIN + `"}}`),
		[]byte(`{"v":1,"id":ROSSI MARIO RSSMRA80A01H501U ` + attackPIN + `}`),
		[]byte(`{"v":1,"totem":"demo-02","status":"online"}ROSSI MARIO RSSMRA80A01H501U ` + attackPIN),
		[]byte(`ROSSI MARIO RSSMRA80A01H501U PIN ` + attackPIN),
		// Well formed, each field within its syntax, personal data where
		// a field is free or a CF fits (a totem id's or a key's syntax):
		// an unsigned command, a command under an unknown key, an
		// operation claiming another totem.
		[]byte(`{"v":1,"id":"ROSSI MARIO RSSMRA80A01H501U ` + attackPIN + `","name":"ping"}`),
		[]byte(`{"v":1,"id":"RSSMRA80A01H501U","name":"ping","key":"RSSMRA80A01H501U","role":"ops","issued":"2026-01-01T00:00:00Z","expires":"2036-01-01T00:00:00Z","sig":"` + strings.Repeat("A", 86) + `=="}`),
		[]byte(`{"v":1,"id":"0123456789abcdef0123456789abcdef","totem":"RSSMRA80A01H501U","seq":1,"kind":"consent","payload":{},"created":"2026-01-01T00:00:00Z"}`),
	}
}

// TestMalformedPersonalData covers finding 11's attack: a totem and a
// console send malformed envelopes carrying personal data to the hub and
// to a totem. The hub and the totem keep working; the log check is
// TestMain's.
func TestMalformedPersonalData(t *testing.T) {
	onBothBrokers(t, malformedPersonalData)
}

func malformedPersonalData(t *testing.T, kind string) {
	r := record(t, "11 malformed envelopes with CF, name and PIN"+onBroker(kind))
	h := startHub(t, hubOpts{mosquitto: kind == mosquitto})
	_, w, m := h.underAttack(t, "demo-01")
	att := h.attacker(t, "demo-02", "demo-02", nil)
	con := h.attacker(t, "console", "console-mal", nil)
	sent := 0
	for _, b := range malformed() {
		for _, leaf := range []string{protocol.LeafOp, protocol.LeafState, protocol.LeafTelemetry, protocol.LeafEvent, protocol.LeafSync} {
			if _, err := att.publish(protocol.Topic("demo-02", leaf), b, false); err == nil {
				sent++
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, p := range []*paho.Publish{
			{Topic: protocol.HubCmdTopic, QoS: 1, Payload: b, Properties: &paho.PublishProperties{
				ResponseTopic: protocol.HubReplyTopic("console"), CorrelationData: []byte("c")}},
			{Topic: protocol.Topic("demo-01", protocol.LeafCmd), QoS: 1, Payload: b, Properties: &paho.PublishProperties{
				ResponseTopic: protocol.ReplyTopic("demo-01", "console"), CorrelationData: []byte("c")}},
		} {
			if _, err := con.c.Publish(ctx, p); err == nil {
				sent++
			}
		}
		cancel()
	}
	time.Sleep(time.Second)
	h.auditDump(t, 10*time.Second, "command_refused")
	f := m.stop()
	r.fig("malformed sent %d", sent)
	r.hubFigs(f)
	r.legitFigs(t, w)
	if !h.alive() {
		t.Fatal("the hub died on malformed envelopes")
	}
}

// TestStatusUnderChatter covers finding 12: `totemctl status` waited for
// 300 ms of silence and never returned while a totem published more often.
// With demo-02 publishing its presence and telemetry every 100 ms, status
// returns within 15 s.
func TestStatusUnderChatter(t *testing.T) {
	r := record(t, "12 totemctl status while a totem publishes every 100 ms")
	h := startHub(t, hubOpts{})
	_, w, m := h.underAttack(t, "demo-01")
	att := h.attacker(t, "demo-02", "demo-02", nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Presence and telemetry each every 100 ms, staggered, at QoS 0
		// so that no acknowledgement can delay one into a silence.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 600; i++ { // at most 30 s
			p := &paho.Publish{Topic: protocol.Topic("demo-02", protocol.LeafState), Retain: true}
			p.Payload, _ = protocol.Marshal(protocol.State{V: protocol.Version, Totem: "demo-02", Status: protocol.Online, Since: time.Now()})
			if i%2 == 1 {
				p.Topic = protocol.Topic("demo-02", protocol.LeafTelemetry)
				p.Payload, _ = protocol.Marshal(protocol.Telemetry{V: protocol.Version, Totem: "demo-02", At: time.Now(), Uptime: float64(i)})
			}
			att.c.Publish(context.Background(), p)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	out, err := h.ctl(t, 15*time.Second, "status", "-o", "json")
	took := time.Since(start)
	close(stop)
	<-done
	f := m.stop()
	r.fig("status took %s", took.Round(time.Millisecond))
	r.hubFigs(f)
	r.legitFigs(t, w)
	if err != nil {
		failf(t, "totemctl status with a totem publishing every 100 ms: %v", err)
	}
	if !strings.Contains(out, "demo-01") || !strings.Contains(out, "demo-02") {
		failf(t, "totemctl status lists neither demo-01 nor demo-02: %s", out)
	}
}

// TestStatusEscapes covers finding 13's terminal escapes: totemctl status
// printed raw whatever a totem put in its presence and telemetry. A
// stolen totem credential publishes fields full of escape sequences: the
// table totemctl status prints carries no control character.
func TestStatusEscapes(t *testing.T) {
	r := record(t, "13 escape sequences in telemetry vs totemctl status")
	h := startHub(t, hubOpts{})
	_, w, m := h.underAttack(t, "demo-01")
	att := h.attacker(t, "demo-02", "demo-02", nil)
	const esc = "\x1b[2J\x1b]0;owned\x07\r"
	st, _ := protocol.Marshal(protocol.State{V: protocol.Version, Totem: "demo-02", Status: protocol.Online + esc,
		Since: time.Now(), Version: "1.0" + esc, Boot: esc})
	tel, _ := protocol.Marshal(protocol.Telemetry{V: protocol.Version, Totem: "demo-02", At: time.Now(),
		Devices: map[string]string{"printer" + esc: "fault" + esc},
		Last:    &protocol.Outcome{OpID: esc, Seq: 1, Protocol: "P" + esc, Transport: esc, Processing: esc, At: time.Now()}})
	for _, p := range []struct {
		leaf string
		b    []byte
	}{{protocol.LeafState, st}, {protocol.LeafTelemetry, tel}} {
		if _, err := att.publish(protocol.Topic("demo-02", p.leaf), p.b, true); err != nil {
			t.Fatal(err)
		}
	}
	// The legitimate totem keeps operating while status runs: status
	// reads the hub's fleet registry, it no longer waits for silence
	// (finding 12).
	out, err := h.ctl(t, 15*time.Second, "status")
	f := m.stop()
	var ctl int
	for _, c := range out {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c >= 0x80 && c < 0xa0 {
			ctl++
		}
	}
	r.fig("control characters %d", ctl)
	r.hubFigs(f)
	r.legitFigs(t, w)
	if err != nil {
		t.Fatalf("totemctl status: %v: %s", err, out)
	}
	if !strings.Contains(out, "demo-02") {
		t.Fatalf("totemctl status does not list demo-02: %q", out)
	}
	if ctl > 0 {
		failf(t, "totemctl status printed %d control characters from a totem's telemetry: %q", ctl, out)
	}
}
