package uplink

import (
	"context"
	"testing"
	"time"
)

// moves waits (bounded by ctx) until Progress passes since.
func moves(ctx context.Context, u *Uplink, since time.Time) bool {
	for ctx.Err() == nil {
		if u.Progress().After(since) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Progress moves while the link is up and idle and while it is down
// waiting for the broker: an idle or offline loop is not a stuck one.
func TestProgressConnectedAndOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := newRig(t)
	u, _ := r.run(t, ctx, Options{Heartbeat: 50 * time.Millisecond})
	until(ctx, u.Connected)
	if p := u.Progress(); !moves(ctx, u, p) || !moves(ctx, u, u.Progress()) {
		t.Fatal("Progress did not move while connected and idle")
	}
	r.srv.Close()
	until(ctx, func() bool { return !u.Connected() })
	if p := u.Progress(); !moves(ctx, u, p) || !moves(ctx, u, u.Progress()) {
		t.Fatal("Progress did not move while offline")
	}
}
