//go:build cgo && pcsc

package firmware_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/drivers/pcsc"
	"github.com/aslcns/totem/drivers/pcsc/pcsctest"
	"github.com/aslcns/totem/hal"
)

// pcscCards is the slot of a scene on the real stack: a private pcscd with
// vpcd, and virtual TS-CNS cards that connect to it.
type pcscCards struct {
	t      *testing.T
	d      *pcsctest.Daemon
	r      *pcsc.Reader
	cancel context.CancelFunc
	in     *vcard.Card
	count  int // pcscd's event counter when in was seen
}

func newSceneCards(t *testing.T, log *slog.Logger) sceneCards {
	t.Helper()
	d := pcsctest.Start(t) // skips when pcscd or vpcd is missing
	ctx, cancel := context.WithCancel(context.Background())
	r, err := pcsc.Open(ctx, pcsc.Options{Reader: pcsctest.Reader0, Logger: log.With("subsystem", "pcsc"),
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return &pcscCards{t: t, d: d, r: r, cancel: cancel}
}

func (c *pcscCards) reader() hal.CardReader { return c.r }

func (c *pcscCards) insert(ctx context.Context, name string) {
	c.t.Helper()
	c.in = vcard.New(profile(c.t, name))
	if err := c.d.Insert(ctx, 0, c.in); err != nil {
		c.t.Fatal(err)
	}
	var err error
	if c.count, err = c.d.AwaitPresent(ctx, pcsctest.Reader0); err != nil {
		c.t.Fatal(err)
	}
}

// remove takes the card out and waits until pcscd's poll saw the slot
// empty, as a hand is slow enough to allow: a card inserted sooner would go
// unannounced (see pcsctest.AwaitRemoval).
func (c *pcscCards) remove(ctx context.Context) {
	c.t.Helper()
	if c.in == nil {
		return
	}
	c.in.Remove()
	c.in = nil
	if err := c.d.AwaitRemoval(ctx, pcsctest.Reader0, c.count); err != nil {
		c.t.Fatal(err)
	}
}

func (c *pcscCards) pin(name string) string {
	p, _ := vcard.Lookup(name)
	return p.PIN
}

func (c *pcscCards) close() {
	if c.in != nil {
		c.in.Remove()
	}
	c.r.Close()
	c.cancel()
}
