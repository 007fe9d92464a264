package uplink

import (
	"context"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// Events raised while Run shuts down (the firmware raises them from its
// own goroutines at any time) start no goroutine Run does not wait for:
// under -race, a WaitGroup Add racing Run's Wait was reported here, and an
// event's goroutine could outlive Run.
func TestEventDuringShutdown(t *testing.T) {
	r := newRig(t)
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		u, errc := r.run(t, ctx, Options{})
		deadline := time.Now().Add(5 * time.Second)
		for !u.Connected() {
			if time.Now().After(deadline) {
				t.Fatal("uplink did not connect")
			}
			time.Sleep(5 * time.Millisecond)
		}
		stop, hammered := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(hammered)
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u.Event(protocol.Event{Level: protocol.LevelInfo, Code: "test", Message: "shutdown"})
			}
		}()
		time.Sleep(10 * time.Millisecond) // some events in flight
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		close(stop)
		<-hammered
		if u.cmds.Go(func() {}) {
			t.Fatal("Run returned with its goroutine set open: a late event would outlive it")
		}
	}
}
