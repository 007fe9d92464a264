package hub

import (
	"context"
	"errors"
	"testing"
	"time"
)

// After a failed batch the worker pauses, 50 ms doubling up to 2 s while
// batches keep failing, and not at all after one that went through.
func TestBackendPause(t *testing.T) {
	var got []time.Duration
	p := backendPause{wait: func(_ context.Context, d time.Duration) bool { got = append(got, d); return true }}
	ctx := context.Background()
	down := errors.New("database unavailable")
	for range 8 {
		p.after(ctx, down)
	}
	p.after(ctx, nil)
	p.after(ctx, down)
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000, 50}
	if len(got) != len(want) {
		t.Fatalf("pauses %v", got)
	}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("pauses %v, want %v ms", got, want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if (&backendPause{}).after(cctx, down) {
		t.Fatal("a pause went on past its context")
	}
}
