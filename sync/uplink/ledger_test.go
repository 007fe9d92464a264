package uplink

import (
	"context"
	"testing"
	"time"
)

// A card-state question asked as soon as the link is up, its
// subscriptions late, is answered: it waits for the subscriptions. Sent
// before them, the hub's answer was lost and the caller (the activation
// flow) waited until its deadline for nothing.
func TestCardStateBeforeSubscriptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := newLiveHub(t, nil)
	release := make(chan struct{})
	u := l.run(t, ctx, Options{beforeSetup: func() {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	if !until(ctx, u.Connected) {
		t.Fatal("uplink did not connect")
	}
	go func() {
		time.Sleep(300 * time.Millisecond) // the question is on its way first
		close(release)
	}()
	st, err := u.CardState(ctx, "6090044444444000")
	if err != nil || st == "" {
		t.Fatalf("CardState before the subscriptions: %q, %v; want the hub's answer", st, err)
	}
}
