package uplink

import (
	"context"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// Progress is when the session loop last ran: it wakes every Heartbeat,
// connected or not, to record it, so a link waiting for the network
// proves it is alive and a loop stuck in a call stops moving it. totemd
// pings the systemd watchdog only while it moves. Zero before Run.
func (u *Uplink) Progress() time.Time {
	if n := u.beat.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

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
