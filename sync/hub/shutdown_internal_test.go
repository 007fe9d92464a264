package hub

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"
)

// Run leaves no goroutine of its own behind: the subscription started
// after each connection (from paho's callback) is counted with the
// command pools and waited for, and none starts once Run has begun to
// wait. Before, it was a bare go statement Run did not know of.
func TestRunWaitsForItsSubscription(t *testing.T) {
	o := embedded(t)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		h := New(o)
		done := make(chan error, 1)
		go func() { done <- h.Run(ctx) }()
		if err := h.AwaitConnection(ctx); err != nil {
			t.Fatal(err)
		}
		cancel() // the subscription is likely still waiting for its SUBACK
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if h.cmds.Go(func() {}) {
			t.Fatal("Run returned with its goroutine set open: a subscription after it would be lost to it")
		}
		buf := make([]byte, 1<<20)
		if st := buf[:runtime.Stack(buf, true)]; bytes.Contains(st, []byte("hub.(*Hub).Run.func")) {
			t.Fatalf("a goroutine of Run is still running after it returned:\n%s", st)
		}
	}
}
