//go:build !(cgo && pcsc)

package firmware_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
)

// simCards is the slot of a scene built without PC/SC: the simulated
// reader, holding cards whose chip data the cns driver read from the same
// virtual cards the pcsc build puts behind pcscd.
type simCards struct {
	t *testing.T
	r *sim.Reader
}

func newSceneCards(t *testing.T, _ *slog.Logger) sceneCards {
	return &simCards{t: t, r: sim.NewReader("sim")}
}

func (c *simCards) reader() hal.CardReader { return c.r }

func (c *simCards) insert(ctx context.Context, name string) {
	c.t.Helper()
	p := profile(c.t, name)
	vc := vcard.New(p)
	// The simulated card answers what the chip read gave, refusals too.
	info, err := cns.New(vc, vc.ATR()).Info(ctx)
	c.r.Insert(&sim.Card{Info: info, PIN: p.PIN, PUK: p.PUK, Tries: p.Tries, Err: err})
}

func (c *simCards) remove(context.Context) { c.r.Remove() }

func (c *simCards) pin(name string) string {
	p, _ := vcard.Lookup(name)
	return p.PIN
}

func (c *simCards) close() {}
