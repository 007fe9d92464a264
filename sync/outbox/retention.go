package outbox

import (
	"context"
	"time"
)

// RunPurge purges, at start and then every interval until ctx is done, the
// entries settled (a final result received) more than retention ago, with
// Purge: their payloads — the citizen's data — leave the totem; the hub's
// send log keeps each one's summary. now is the wall clock and whether it
// is synchronised: a round with an unsynchronised clock (a board without
// RTC that has not reached NTP yet) purges nothing, so a clock set in the
// future cannot empty the outbox. report, if not nil, is told the outcome
// of every round.
func (o *Outbox) RunPurge(ctx context.Context, every, retention time.Duration, now func() (time.Time, bool), report func(n int, err error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := 0, error(nil)
		if wall, synced := now(); synced {
			n, err = o.Purge(wall.Add(-retention))
		}
		if report != nil {
			report(n, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
