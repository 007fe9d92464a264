package waiters

import "testing"

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
