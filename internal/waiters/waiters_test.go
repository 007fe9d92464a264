package waiters

import (
	"testing"
	"time"
)

func TestDeliverKeepsListening(t *testing.T) {
	var s Set[int]
	ch, stop := s.Add("a")
	s.Deliver("a", 1)
	s.Deliver("a", 2) // not taken yet: the first stays
	if v := <-ch; v != 1 {
		t.Fatalf("got %d, want 1", v)
	}
	s.Deliver("a", 3)
	if v := <-ch; v != 3 {
		t.Fatalf("got %d, want 3", v)
	}
	stop()
	s.Deliver("a", 4) // nobody listens: dropped, no block
	select {
	case v := <-ch:
		t.Fatalf("got %d after stop", v)
	default:
	}
}

func TestAnswerOnce(t *testing.T) {
	var s Set[string]
	ch, stop := s.Add("x")
	defer stop()
	s.Answer("x", "first")
	s.Answer("x", "second") // x is forgotten: dropped
	if v := <-ch; v != "first" {
		t.Fatalf("got %q", v)
	}
	select {
	case v := <-ch:
		t.Fatalf("second answer %q delivered", v)
	default:
	}
	s.Answer("nobody", "x") // no waiter: nothing happens
}

// A result delivered between the registration and the caller's own read
// (the uplink answering while the session reads the outbox) must not block
// the caller on its full channel: the first answer is kept.
func TestAddCheckedDeliveryFirst(t *testing.T) {
	var s Set[int]
	done := make(chan struct{})
	go func() {
		defer close(done)
		ch, forget := s.AddChecked("op", func() (int, bool) {
			s.Deliver("op", 1) // lands while the caller reads
			return 2, true
		})
		defer forget()
		if v := <-ch; v != 1 {
			t.Errorf("got %d, want the delivered 1", v)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("AddChecked blocked on its own channel")
	}
}

func TestAddCheckedFound(t *testing.T) {
	var s Set[int]
	ch, forget := s.AddChecked("op", func() (int, bool) { return 7, true })
	defer forget()
	if v := <-ch; v != 7 {
		t.Fatalf("got %d", v)
	}
	ch2, forget2 := s.AddChecked("op2", func() (int, bool) { return 0, false })
	defer forget2()
	select {
	case v := <-ch2:
		t.Fatalf("nothing found, got %d", v)
	default:
	}
}
