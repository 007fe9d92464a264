package hub

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// blockingHandler holds the goroutine that logs msg until release is
// closed, and says on entered that it got there.
type blockingHandler struct {
	slog.Handler
	msg     string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == b.msg {
		b.once.Do(func() { close(b.entered) })
		<-b.release
	}
	return b.Handler.Handle(ctx, r)
}

func (b *blockingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &blockingHandler{Handler: b.Handler.WithAttrs(as), msg: b.msg, entered: b.entered, release: b.release}
}

// Run waits for the subscription goroutine it started after the
// connection: held in its last log line, the goroutine keeps Run from
// returning. With a goroutine Run does not track (a bare go statement),
// Run returned while it still ran.
func TestRunWaitsForASubscriptionStillRunning(t *testing.T) {
	o := embedded(t)
	bh := &blockingHandler{Handler: slog.NewTextHandler(io.Discard, nil), msg: "ingest subscribed",
		entered: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Logger = slog.New(bh)
	h := New(o)
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	select {
	case <-bh.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the hub never subscribed")
	}
	cancel()
	// Not a measure of speed: Run has no reason to return before the
	// release, and is given a moment to show it would.
	select {
	case err := <-done:
		close(bh.release)
		t.Fatalf("Run returned (%v) while its subscription goroutine was still running", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(bh.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
