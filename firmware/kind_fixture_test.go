package firmware

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/opkind"
	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// fixtureKind is an operation kind that exists only in the tests: all a
// new kind needs on the totem's side is in this file — its declaration,
// its flow (ask, submit, print), its receipt lines and its menu key — plus
// its golden receipts in testdata (receipt-fixture-*.golden, written with
// -update). The CMS's side is cms/refcms/kinds_test.go. The files a real
// kind is written in, six at most, are listed in cms/opkind's package doc;
// each piece removed from here fails TestEveryFlowKindIsComplete,
// TestReceiptGolden or the test below (registerKind panics at init on a
// kind cms/opkind does not declare).
const fixtureKind = "test_fixture"

func fixtureLines() []string { return []string{"Operazione di prova registrata."} }

func fixtureFlow(a *App, ctx context.Context, _ hal.Card, info hal.CardInfo) error {
	payload, err := json.Marshal(struct {
		Card any `json:"card"`
	}{flows.CardRef(info)})
	if err != nil {
		return err
	}
	a.Show("saving")
	e, err := a.Submit(ctx, fixtureKind, payload)
	if err != nil {
		return err
	}
	return a.Finish(ctx, e, fixtureKind, info, fixtureLines())
}

func init() {
	opkind.Register(opkind.Kind{Name: fixtureKind, Flow: true})
	registerKind(fixtureKind, kindSpec{title: "Operazione di prova", titleEN: "Test operation", self: fixtureFlow})
	otherMenu['4'] = fixtureKind
	kindReceipts["fixture"] = func(a *App) *hal.Doc {
		return a.Frame().Receipt(outbox.Entry{ID: strings.Repeat("f", 32), Seq: 9}, kindTitle(fixtureKind), hal.CardInfo{CF: "RSSMRA80A01H501U"}, fixtureLines())
	}
}

// The fixture kind runs through the same submit and receipt as the real
// ones: durable in the outbox with the queued expiry, answered (here by
// the test, as the hub would), printed under its registered title with
// the protocol number.
func TestFixtureKindSubmitsAndPrints(t *testing.T) {
	box, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	pr := sim.NewPrinter("")
	a := New(Devices{Printer: pr, Display: &haltest.Display{}}, Options{Totem: "demo-01", Outbox: box, ResultWait: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The hub's part: the answer to whatever was enqueued.
	answered := make(chan error, 1)
	go func() {
		select {
		case <-box.Notify():
		case <-ctx.Done():
			answered <- ctx.Err()
			return
		}
		es, err := box.Pending(0, 10)
		if err != nil || len(es) != 1 {
			answered <- err
			return
		}
		e, err := box.Record(&protocol.Result{V: 1, OpID: es[0].ID, Seq: es[0].Seq,
			Transport:  protocol.Transport{Status: protocol.TransportReceived, Protocol: "261123000000099"},
			Processing: protocol.Processing{Status: protocol.ProcessingAccepted}})
		if err == nil {
			a.Result(e)
		}
		answered <- err
	}()

	info := hal.CardInfo{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC)}
	spec, ok := kindSpecs[fixtureKind]
	if !ok || spec.self == nil {
		t.Fatal("the fixture kind has no self-service flow registered")
	}
	if err := spec.self(a, ctx, nil, info); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	got := pr.Receipts()
	if len(got) != 1 || !strings.Contains(got[0], "Operazione di prova") || !strings.Contains(got[0], "261123000000099") ||
		!strings.Contains(got[0], "Operazione di prova registrata.") {
		t.Fatalf("receipts %q", got)
	}
	es, err := box.Recent(10)
	if err != nil || len(es) != 1 || es[0].Kind != fixtureKind || !es[0].Done {
		t.Fatalf("outbox %+v, %v", es, err)
	}
}
