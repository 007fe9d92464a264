package firmware

import (
	"time"
)

// Audit queues an audit event nobody waits for.
func (a *App) Audit(kind string, payload []byte, now time.Time) error {
	_, _, done, err := a.enqueue(kind, payload, now, now.Add(a.o.QueuedTTL))
	if err != nil {
		return err
	}
	done()
	return nil
}
