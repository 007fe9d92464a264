package main

import (
	"context"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
)

// readerRequest is a citizen's reader request at the rig's totem, with
// the payment receipt number receipt: the demo card in, Richiesta lettore,
// the number typed, the summary confirmed, accepted, the card out. It
// returns the operation's id, done in the outbox.
func (r *rig) readerRequest(t *testing.T, ctx context.Context, receipt string) string {
	t.Helper()
	r.reader.Insert(sim.DemoCard())
	for _, step := range []func() error{
		func() error { _, err := r.panel.WaitFor(ctx, "2 Richiesta lettore"); return err },
		func() error { r.panel.Press('2'); _, err := r.panel.WaitFor(ctx, "n. ricevuta"); return err },
		func() error {
			r.panel.Type(receipt)
			r.panel.Press(hal.KeyOK)
			_, err := r.panel.WaitFor(ctx, "#=Conferma") // the summary (issue 17)
			return err
		},
		func() error {
			r.panel.Press(hal.KeyOK)
			_, err := r.panel.WaitFor(ctx, "Accolta. Protocollo:")
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	r.reader.Remove()
	recent, err := r.box.Recent(1)
	if err != nil || len(recent) != 1 || recent[0].Kind != cms.KindReader || !recent[0].Done {
		t.Fatalf("the reader request: %+v %v", recent, err)
	}
	return recent[0].ID
}
