// Package goset tracks the goroutines a component starts for callers whose
// timing it does not control (a client library's callback, an exported
// method), so that its Run can wait for all of them on the way out.
//
// A bare sync.WaitGroup cannot do this: an Add with the counter at zero
// while Wait runs is a misuse (the race detector reports it), and the
// goroutine it starts outlives the Run that waited. A Set refuses new
// goroutines once it is closed, under the same lock that counts them.
package goset

import (
	"net"
	"sync"
)

// Set is a group of goroutines that can be closed. The zero value is open
// and ready to use; a Set must not be copied after first use.
type Set struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs fn on a new goroutine unless the set is closed, and reports
// whether it did.
func (s *Set) Go(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// Close refuses new goroutines, then waits for the running ones to return.
func (s *Set) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// Accept serves l: serve runs on a goroutine of its own for each
// connection l accepts, until Accept fails (l closed). wait, called once
// l is closed, returns when the accept loop and every serve have.
func Accept(l net.Listener, serve func(net.Conn)) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	return wg.Wait
}
