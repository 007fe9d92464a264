package agent

import (
	"context"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
)

func TestGate(t *testing.T) {
	c := haltest.NewClock(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))
	g := NewGate(2*time.Minute, c.Now)
	ctx := context.Background()
	if _, ok := g.Hold(); ok {
		t.Fatal("held right after start")
	}
	c.Advance(3 * time.Minute)
	// A card in the slot: a session, however long it is quiet.
	if err := g.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if _, ok := g.Hold(); ok {
		t.Fatal("held with a card in the slot")
	}
	g.Pass(ctx, false) // card out
	c.Advance(time.Minute)
	if _, ok := g.Hold(); ok {
		t.Fatal("held a minute after the card left")
	}
	c.Advance(2 * time.Minute)
	release, ok := g.Hold()
	if !ok {
		t.Fatal("not held when quiet")
	}
	if _, ok := g.Hold(); ok {
		t.Fatal("held twice")
	}
	// While held, a card inserted is kept back: the firmware does not see
	// it, so no session starts.
	passed := make(chan error, 1)
	go func() { passed <- g.Pass(ctx, true) }()
	select {
	case err := <-passed:
		t.Fatalf("input passed a held gate: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	release() // twice is harmless
	if err := <-passed; err != nil {
		t.Fatal(err)
	}
	// A held gate lets a stopping totemd go.
	c.Advance(time.Hour)
	g.Pass(ctx, false)
	c.Advance(time.Hour)
	if _, ok := g.Hold(); !ok {
		t.Fatal("not held")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Key(cctx); err == nil {
		t.Fatal("Key returned nil on a held gate with ctx done")
	}
}
