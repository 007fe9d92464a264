package haltest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/hal/haltest"
)

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	go func() { ch <- 7 }()
	if got := haltest.Recv(t, context.Background(), ch, "seven"); got != 7 {
		t.Fatalf("got %d", got)
	}
	// Nothing comes: the test fails, naming what, once ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	f := &fatal{TB: t}
	if got := haltest.Recv(f, ctx, ch, "the answer"); got != 0 || !strings.Contains(f.msg, "the answer: never came") {
		t.Fatalf("got %d, failure %q", got, f.msg)
	}
	// A value already there when ctx has ended still counts.
	done, stop := context.WithCancel(context.Background())
	stop()
	ch <- 8
	if got := haltest.Recv(t, done, ch, "eight"); got != 8 {
		t.Fatalf("got %d", got)
	}
}
