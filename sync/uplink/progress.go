package uplink

import (
	"context"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// Progress is when the session loop last ran: it wakes every Heartbeat,
// connected or not, to record it, so a link waiting for the network
// proves it is alive and a loop stuck in a call stops moving it. totemd
// pings the systemd watchdog only while it moves. Zero before Run; once
// Run has returned, now: a link that ended (stopped, or refused and told
// to stop retrying) is not a stuck one.
func (u *Uplink) Progress() time.Time {
	switch n := u.beat.Load(); n {
	case 0:
		return time.Time{}
	case ended:
		return time.Now()
	default:
		return time.Unix(0, n)
	}
}

// ended is beat once Run has returned.
const ended = -1

func (u *Uplink) alive() { u.beat.Store(time.Now().UnixNano()) }

// awaitConnection is cm.AwaitConnection that records progress on every
// heartbeat while the link is down: being offline is normal.
func (u *Uplink) awaitConnection(ctx context.Context, cm *autopaho.ConnectionManager, heartbeat <-chan time.Time) error {
	for {
		u.alive()
		up := make(chan error, 1)
		wctx, cancel := context.WithCancel(ctx)
		go func() { up <- cm.AwaitConnection(wctx) }()
		select {
		case err := <-up:
			cancel()
			return err
		case <-heartbeat:
			cancel()
			if err := <-up; err == nil {
				return nil // it came up meanwhile
			} else if ctx.Err() != nil || err != context.Canceled {
				return err
			}
		}
	}
}
