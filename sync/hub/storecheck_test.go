package hub_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub"
)

// The store check pings once per TTL however many probes ask, says why
// the store is not ready, and answers within its timeout when the store
// does not answer at all.
func TestStoreCheck(t *testing.T) {
	var pings atomic.Int64
	down := errors.New("database unavailable")
	var fail atomic.Bool
	now := time.Unix(1e9, 0)
	c := &hub.StoreCheck{TTL: time.Second, Now: func() time.Time { return now }, Ping: func(context.Context) error {
		pings.Add(1)
		if fail.Load() {
			return down
		}
		return nil
	}}
	ctx := context.Background()
	for range 10 {
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("%d pings for 10 probes within the TTL, want 1", n)
	}
	fail.Store(true)
	if err := c.Check(ctx); err != nil {
		t.Fatalf("within the TTL: %v, want the cached ok", err)
	}
	now = now.Add(time.Second)
	if err := c.Check(ctx); !errors.Is(err, down) {
		t.Fatalf("after the TTL: %v, want %v", err, down)
	}
	fail.Store(false)
	now = now.Add(time.Second)
	if err := c.Check(ctx); err != nil {
		t.Fatalf("back: %v", err)
	}

	// A store that does not answer (a server out of reach): the probe
	// gets its answer after Timeout, not after the caller's own.
	stuck := &hub.StoreCheck{Timeout: 50 * time.Millisecond, Ping: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	if err := stuck.Check(ctx); !errors.Is(err, hub.ErrStoreTimeout) {
		t.Fatalf("a store that does not answer: %v", err)
	}
}
