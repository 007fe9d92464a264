package hub

import (
	"context"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// A totem with a long backlog does not make the others wait: each batch
// takes a few operations of every waiting totem in turn, each totem's in
// order, and the turn goes on where the previous batch stopped.
func TestFairBatches(t *testing.T) {
	q := newFair(1000)
	push := func(totem string, n int) {
		for i := 1; i <= n; i++ {
			if !q.push(context.Background(), pending{op: &protocol.Op{Totem: totem, Seq: uint64(i)}}) {
				t.Fatal("push refused")
			}
		}
	}
	push("big", 200)
	push("a", 3)
	push("b", 20)
	b1 := q.take(nil, 16)
	per := map[string][]uint64{}
	for _, p := range b1 {
		per[p.op.Totem] = append(per[p.op.Totem], p.op.Seq)
	}
	if len(per["a"]) != 3 || len(per["b"]) == 0 || len(per["big"]) > quantum {
		t.Fatalf("first batch %v: want every totem in it, the big one at most %d", per, quantum)
	}
	for totem, seqs := range per {
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s out of order: %v", totem, seqs)
			}
		}
	}
	// The next batch goes on with the turn after b's (cut short by the
	// batch's end, it had its turn): big's.
	b2 := q.take(nil, quantum)
	if b2[0].op.Totem != "big" || b2[0].op.Seq != uint64(len(per["big"])+1) {
		t.Fatalf("second batch starts with %s/%d", b2[0].op.Totem, b2[0].op.Seq)
	}
	if got, want := q.len(), 223-16-quantum; got != want {
		t.Fatalf("%d waiting, want %d", got, want)
	}
}

// The queue is bounded: push waits for room and gives up when ctx ends.
func TestFairBound(t *testing.T) {
	q := newFair(2)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 2 {
		if !q.push(ctx, pending{op: &protocol.Op{Totem: "t", Seq: uint64(i + 1)}}) {
			t.Fatal("push refused below the bound")
		}
	}
	cancel()
	if q.push(ctx, pending{op: &protocol.Op{Totem: "t", Seq: 3}}) {
		t.Fatal("push past the bound")
	}
	q.take(nil, 1)
	if !q.push(context.Background(), pending{op: &protocol.Op{Totem: "t", Seq: 3}}) {
		t.Fatal("no room after a take")
	}
}

// Room made by one batch goes to as many waiting pushers as it has room
// for, in turn: with an in-process broker every totem waits in push on
// its own goroutine, and waking only one of them per batch left the
// queue nearly empty while the totems waited.
func TestFairRoomWakesWaiters(t *testing.T) {
	const max, waiters = 4, 40
	q := newFair(max)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range max {
		q.push(ctx, pending{op: &protocol.Op{Totem: "full", Seq: uint64(i + 1)}})
	}
	done := make(chan bool, waiters)
	for i := range waiters {
		go func() { done <- q.push(ctx, pending{op: &protocol.Op{Totem: string(rune('a' + i%26)), Seq: 1}}) }()
	}
	time.Sleep(200 * time.Millisecond) // they all wait (a push that had not tried yet would pass anyway)
	q.take(nil, max)                   // one batch: room for max
	for range max {
		select {
		case ok := <-done:
			if !ok {
				t.Fatal("push gave up")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d queued after a batch made room for %d", q.len(), max)
		}
	}
	if n := q.len(); n != max {
		t.Fatalf("%d queued, want %d", n, max)
	}
	cancel()
	for range waiters - max {
		if <-done {
			t.Fatal("a push past the bound")
		}
	}
}
