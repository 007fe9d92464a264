package hub

import (
	"context"
	"errors"
	"sync"
	"time"
)

// StoreCheck is /readyz's check of the hub's store: a cheap ping (on
// PostgreSQL a round trip on a pooled connection) under a short timeout,
// its answer kept for TTL so that probes from several load balancers
// cost one ping between them. A hub whose database is down or out of
// reach keeps its broker connection and answers every operation
// transport "refused" (the totems send them again); this check is what
// tells the orchestrator the instance cannot apply anything now. Once the
// store answers again the next probe after TTL says ready, with nothing
// to restart: the pool reconnects by itself.
type StoreCheck struct {
	// Ping asks the store whether it takes a write now; it must honour
	// its context.
	Ping    func(context.Context) error
	Timeout time.Duration // one ping; 0: 1 s (under /readyz's own 2 s)
	TTL     time.Duration // an answer kept; 0: 1 s
	Now     func() time.Time

	mu   sync.Mutex
	at   time.Time // of the last answer
	last error
}

// ErrStoreTimeout says the store did not answer the ping within Timeout.
var ErrStoreTimeout = errors.New("store did not answer within the timeout")

// Check returns the store's state: nil when it answered its last ping,
// else why not. Concurrent callers share one ping.
func (c *StoreCheck) Check(ctx context.Context) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ttl, timeout := c.TTL, c.Timeout
	if ttl <= 0 {
		ttl = time.Second
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now().Sub(c.at) < ttl {
		return c.last
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Ping(pctx) }()
	var err error
	select {
	case err = <-done:
		if err != nil && pctx.Err() != nil {
			err = ErrStoreTimeout
		}
	case <-pctx.Done():
		// A Ping that ignores its context does not hold the probe: its
		// goroutine ends when it returns (done is buffered).
		err = ErrStoreTimeout
	}
	c.at, c.last = now(), err
	return err
}

// The worker's pause after a batch its backend could not apply: from
// pauseMin, doubling up to pauseMax while batches keep failing, none
// after one that went through. A database down answers at once (the
// connection is refused): without it the worker would spin answering
// refused to the totems' immediate resends, hundreds a second per totem
// (TestHubLosesPostgreSQL logs the count); with it the operations wait
// in the queue, under the ingest's flow control, and the hub takes them
// again within pauseMax of the database coming back.
const (
	pauseMin = 50 * time.Millisecond
	pauseMax = 2 * time.Second
)

type backendPause struct {
	next time.Duration
	wait func(ctx context.Context, d time.Duration) bool // tests; default a timer
}

// after pauses after a failed batch (err != nil); false when ctx ended.
func (p *backendPause) after(ctx context.Context, err error) bool {
	if err == nil {
		p.next = 0
		return true
	}
	d := max(p.next, pauseMin)
	p.next = min(2*d, pauseMax)
	if p.wait != nil {
		return p.wait(ctx, d)
	}
	return sleep(ctx, d, nil)
}

// sleep waits d, or less if wake fires (a nil wake never does); it
// reports false when ctx is done first.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}
