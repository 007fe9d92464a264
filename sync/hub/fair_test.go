package hub

import (
	"context"
	"fmt"
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
			if ok, _ := q.push(context.Background(), pending{op: &protocol.Op{Totem: totem, Seq: uint64(i)}}); !ok {
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
		if ok, _ := q.push(ctx, pending{op: &protocol.Op{Totem: "t", Seq: uint64(i + 1)}}); !ok {
			t.Fatal("push refused below the bound")
		}
	}
	cancel()
	if ok, _ := q.push(ctx, pending{op: &protocol.Op{Totem: "t", Seq: 3}}); ok {
		t.Fatal("push past the bound")
	}
	q.take(nil, 1)
	if ok, _ := q.push(context.Background(), pending{op: &protocol.Op{Totem: "t", Seq: 3}}); !ok {
		t.Fatal("no room after a take")
	}
}

// Room made by a batch goes to the pushers waiting for it, in the order
// they came, and as many as it has room for: with an in-process broker
// every totem pushes from its own connection, and a totem whose push had
// just succeeded pushed its next operation ahead of those waiting (some
// waited for seconds), or a batch woke only one of them.
func TestFairLetsWaitersInInOrder(t *testing.T) {
	const max, waiters = 4, 12
	q := newFair(max)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range max {
		q.push(ctx, pending{op: &protocol.Op{Totem: "full", Seq: uint64(i + 1)}})
	}
	waiting := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.waiters)
	}
	done := make(chan bool, waiters+1)
	for i := range waiters {
		go func() {
			ok, waited := q.push(ctx, pending{op: &protocol.Op{Totem: fmt.Sprintf("w%02d", i), Seq: 1}})
			done <- ok && waited
		}()
		for waiting() != i+1 { // one at a time: they came in this order
			time.Sleep(time.Millisecond)
		}
	}
	for turn := range waiters / max {
		batch := q.take(nil, max)
		if len(batch) != max {
			t.Fatalf("turn %d: batch of %d", turn, len(batch))
		}
		if n := q.len(); n != max {
			t.Fatalf("turn %d: %d queued after the batch, want %d let in", turn, n, max)
		}
		// A newcomer waits behind those already waiting.
		if turn == 0 {
			go func() {
				ok, waited := q.push(ctx, pending{op: &protocol.Op{Totem: "late", Seq: 1}})
				done <- ok && waited
			}()
			for waiting() != waiters-max+1 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	var order []string
	for _, p := range q.take(nil, max) {
		order = append(order, p.op.Totem)
	}
	if want := []string{"w08", "w09", "w10", "w11"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("last let in %v, want %v", order, want)
	}
	if order := q.take(nil, max); len(order) != 1 || order[0].op.Totem != "late" {
		t.Fatalf("after them: %v, want the newcomer", order)
	}
	for range waiters + 1 {
		if !<-done {
			t.Fatal("a waiter not let in")
		}
	}
}
