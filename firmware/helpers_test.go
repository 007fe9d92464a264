package firmware_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// The helpers a test uses to drive the panel and to build the rig, so
// that it says what it checks and not how the keys go.

// step waits for a screen showing want, then presses keys: digits, A–D,
// '#' (OK), '*' (Back), or pageTo.
type step struct{ want, keys string }

// pageTo as the keys of a step presses # until the screen shows its want,
// then # once more: the pages of a summary, however many.
const pageTo = "#…"

// run plays script on the panel, step by step.
func (tt *totem) run(ctx context.Context, script []step) {
	tt.t.Helper()
	for _, s := range script {
		if s.keys == pageTo {
			tt.pageTo(ctx, s.want)
			continue
		}
		tt.wait(ctx, s.want)
		tt.panel.Type(s.keys)
	}
}

// pageTo turns pages with # until want shows, then presses #; the pages
// seen are kept in tt.seen.
func (tt *totem) pageTo(ctx context.Context, want string) {
	tt.t.Helper()
	tt.wait(ctx, "Riepilogo 1/")
	for i := 0; ; i++ {
		s := tt.panel.Text()
		tt.seen = append(tt.seen, s)
		if strings.Contains(s, want) {
			break
		}
		if i > 10 {
			tt.t.Fatalf("no %q in the pages %q", want, tt.seen)
		}
		tt.panel.Press(hal.KeyOK)
		tt.waitChange(ctx, s)
	}
	tt.panel.Press(hal.KeyOK)
}

// waitChange waits until the panel shows something else than s.
func (tt *totem) waitChange(ctx context.Context, s string) {
	tt.t.Helper()
	if _, err := tt.panel.WaitChange(ctx, s); err != nil {
		tt.t.Fatalf("the screen stayed %q: %v", s, err)
	}
}

// cat joins script pieces.
func cat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// startWithCard starts a local totem (startLocal, a one-minute idle
// timeout) and puts the test card in the reader.
func startWithCard(t *testing.T) (context.Context, *local) {
	t.Helper()
	ctx := ctxT(t)
	l := startLocal(t, time.Minute)
	l.reader.Insert(testCard())
	return ctx, l
}

// insert puts card in the reader and waits for the citizen's menu.
func (tt *totem) insert(ctx context.Context, card *sim.Card) {
	tt.t.Helper()
	tt.reader.Insert(card)
	tt.wait(ctx, "1 Consensi FSE")
}

// remove takes the card out and waits for the idle screen.
func (tt *totem) remove(ctx context.Context) {
	tt.t.Helper()
	tt.reader.Remove()
	tt.wait(ctx, "Inserire la tessera")
}

// Script pieces of the citizen's menu, from the menu's first page.
var (
	// consentSteps gives the FSE consents (consultazione yes, opposizione
	// no) up to the summary, confirmed.
	consentSteps = cat([]step{{"1 Consensi FSE", "1"}, {"PIN:", testPIN}, {"PIN: ********", "#"}},
		consentAnswers)
	// consentAnswers are the steps after the PIN: information, the two
	// answers, the summary confirmed.
	consentAnswers = []step{{"Informativa FSE", "#"}, {"Consenso 1 di 2", "1"}, {"Consenso 2 di 2", "2"}, {"Riepilogo", "#"}}
	// readerSteps asks for a reader with the payment receipt 20261123042,
	// confirmed.
	readerSteps = []step{{"2 Richiesta lettore", "2"}, {"n. ricevuta", "20261123042#"}, {"#=Conferma", "#"}}
)

// pinChangeSteps changes the PIN from old to new at the first try, from the
// menu.
func pinChangeSteps(old, new string) []step {
	return []step{{"3 Cambio PIN", "3"}, {"Digitare il PIN", old + "#"}, {"Nuovo PIN", new + "#"}, {"Ripetere", new + "#"}}
}

// profile returns the virtual card profile called name; an unknown name
// ends the test.
func profile(t *testing.T, name string) vcard.Profile {
	t.Helper()
	p, ok := vcard.Lookup(name)
	if !ok {
		t.Fatalf("no card profile %q", name)
	}
	return p
}

// flat folds s to single spaces, as a receipt reads whatever its wrapping.
func flat(s ...string) string { return strings.Join(strings.Fields(strings.Join(s, " ")), " ") }

// startE2E starts the hub side (broker, hub, CMS) and a totem connected
// to it, under a context that ends after timeout; finishE2E stops both
// and checks the logs.
func startE2E(t *testing.T, timeout time.Duration) (context.Context, *central, *totem, *synctest.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	dir := t.TempDir()
	lb, log := newLog()
	c := startBroker(t, dir, log, "127.0.0.1:0")
	c.startHub()
	tt := startTotem(t, filepath.Join(dir, "totem"), c.URL(), c.totem, log)
	return ctx, c, tt, lb
}

// finishE2E stops the totem and the hub side, then checks that no log
// line holds personal data.
func finishE2E(t *testing.T, c *central, tt *totem, lb *synctest.Log) {
	t.Helper()
	tt.stop()
	c.stop()
	checkLogs(t, lb)
}

// connected waits until the totem's uplink is connected.
func (tt *totem) connected(ctx context.Context) {
	tt.t.Helper()
	haltest.Until(tt.t, ctx, "the uplink connected", tt.up.Connected)
}

// restart stops the totem and, while it is down, lets f change its
// outbox (enqueue at now), then sweeps the outbox at now+2h, checking
// that exactly one entry expired into quarantine, and starts the totem
// again on the same outbox (with no options).
func (tt *totem) restart(f func(box *outbox.Outbox, now time.Time)) *totem {
	t := tt.t
	t.Helper()
	tt.stop()
	box, err := outbox.Open(filepath.Join(tt.dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f(box, now)
	if rep, err := box.Sweep(now.Add(2 * time.Hour)); err != nil || rep.Expired != 1 {
		t.Fatalf("sweep %+v %v", rep, err)
	}
	box.Close()
	return startTotem(t, tt.dir, tt.url, tt.cr, tt.log)
}

// enqueue is box.Enqueue that fails t on an error.
func enqueue(t *testing.T, box *outbox.Outbox, kind string, payload []byte, now, expires time.Time) outbox.Entry {
	t.Helper()
	e, err := box.Enqueue(kind, payload, now, expires)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startCentral starts the hub side alone (broker, hub, CMS) under a
// context that ends after timeout.
func startCentral(t *testing.T, timeout time.Duration) (context.Context, *central) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	_, log := newLog()
	c := startBroker(t, t.TempDir(), log, "127.0.0.1:0")
	c.startHub()
	return ctx, c
}

// startHubDown reserves the hub side's address, with nothing listening
// there (the hub is down) until c.StartBroker and c.startHub, under a
// context that ends after timeout.
func startHubDown(t *testing.T, timeout time.Duration, log *slog.Logger) (context.Context, *central) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c := startBroker(t, t.TempDir(), log, "127.0.0.1:0")
	c.StopBroker()
	return ctx, c
}

// resultsClient connects a raw client with the test totem's credentials,
// subscribed to its results, which come on the channel returned.
func resultsClient(t *testing.T, ctx context.Context, c *central) (*autopaho.ConnectionManager, chan *protocol.Result) {
	t.Helper()
	results := make(chan *protocol.Result, 16)
	cm := client(t, ctx, c.URL(), c.totem, totemID, func(p *paho.Publish) {
		if r, err := protocol.DecodeResult(p.Payload); err == nil {
			results <- r
		}
	})
	t.Cleanup(func() { cm.Disconnect(context.Background()) })
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic(totemID, protocol.LeafResult), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return cm, results
}
