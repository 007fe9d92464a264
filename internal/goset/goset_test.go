package goset

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Go after Close starts nothing: a goroutine started while Run waits, or
// after it, would outlive it.
func TestGoAfterCloseRunsNothing(t *testing.T) {
	var s Set
	ran := make(chan struct{})
	if !s.Go(func() { close(ran) }) {
		t.Fatal("Go on an open set refused")
	}
	s.Close()
	select {
	case <-ran:
	default:
		t.Fatal("Close returned before the goroutine ran")
	}
	var late atomic.Bool
	if s.Go(func() { late.Store(true) }) {
		t.Fatal("Go on a closed set reported that it started a goroutine")
	}
	if late.Load() {
		t.Fatal("Go on a closed set ran its function")
	}
}

// Go racing Close, as a callback racing Run's shutdown: under -race, a
// WaitGroup Add concurrent with its Wait is reported; every goroutine
// started has returned by the time Close does.
func TestGoRacingClose(t *testing.T) {
	for range 200 {
		var s Set
		var started, finished atomic.Int64
		var callers sync.WaitGroup
		for range 4 {
			callers.Add(1)
			go func() {
				defer callers.Done()
				for range 10 {
					if s.Go(func() { finished.Add(1) }) {
						started.Add(1)
					}
				}
			}()
		}
		s.Close()
		after := finished.Load()
		callers.Wait()
		if got := started.Load(); got != after {
			t.Fatalf("Close returned with %d goroutines started and %d finished", got, after)
		}
	}
}

// Accept serves each connection on its own goroutine, several at once,
// and wait returns, once the listener is closed, only after every serve
// has.
func TestAccept(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	served := make(chan struct{})
	var finished atomic.Int64
	wait := Accept(l, func(c net.Conn) {
		defer c.Close()
		served <- struct{}{}
		<-release // all held at once: one goroutine each
		finished.Add(1)
	})
	const n = 3
	for range n {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for range n {
		<-served
	}
	l.Close()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		t.Fatal("wait returned with serves running")
	default:
	}
	close(release)
	<-done
	if finished.Load() != n {
		t.Fatalf("%d serves finished, want %d", finished.Load(), n)
	}
}
