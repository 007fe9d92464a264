package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/audit"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/hub"
)

// auditPurgeEvery is how often records past the retention are purged.
const auditPurgeEvery = 24 * time.Hour

// openAudit opens the central audit in the state directory and purges
// what is past the retention now and every auditPurgeEvery until ctx is
// done; stop waits for that loop and closes the store.
func openAudit(ctx context.Context, cfg *config.Totemhub, log *slog.Logger) (*audit.Store, func(), error) {
	st, err := audit.Open(filepath.Join(cfg.StateDir, "audit.db"), audit.Options{})
	if err != nil {
		return nil, nil, err
	}
	stop := clock.Go(ctx, func(ctx context.Context) {
		clock.NowAndEvery(ctx, auditPurgeEvery, func() bool {
			if n, err := st.Purge(cfg.Audit.RetentionMonths); err != nil {
				log.Error("audit retention", "err", err)
			} else if n > 0 {
				log.Info("audit records purged", "records", n, "retention_months", cfg.Audit.RetentionMonths)
			}
			return false
		})
	})
	return st, func() {
		stop()
		st.Close()
	}, nil
}

// auditCredentials records the broker's credential events (enrolled,
// rotated, expired, locked, unlocked) in the hub's audit. The broker
// hands them over on its clients' goroutines: a bounded queue takes them,
// one goroutine writes them, and a burst past the queue is counted in
// the log rather than waited for. stop waits for the writer.
func auditCredentials(reg *broker.Registry, h *hub.Hub, log *slog.Logger) (stop func()) {
	type ev struct{ user, event string }
	ch := make(chan ev, 256)
	quit, done := make(chan struct{}), make(chan struct{})
	var dropped atomic.Int64
	reg.OnCredentialEvent(func(user, event string) {
		select {
		case ch <- ev{user, event}:
		default:
			dropped.Add(1)
		}
	})
	go func() {
		defer close(done)
		for {
			select {
			case e := <-ch:
				h.Audit("broker", "credential_"+e.event, credentialDetail(reg, e.user, e.event))
			case <-quit:
				return
			}
		}
	}()
	return func() {
		reg.OnCredentialEvent(func(string, string) {})
		close(quit)
		<-done
		if n := dropped.Load(); n > 0 {
			log.Warn("credential events not audited: queue full", "events", n)
		}
	}
}

// credentialDetail is an audit record's detail for a credential event: the
// user, and for a lock the time and source address of the failure that
// locked it (as totemctl locks shows them).
func credentialDetail(reg *broker.Registry, user, event string) string {
	d := "user=" + user
	if event != broker.EventLocked {
		return d
	}
	locks, err := reg.Locks()
	if err != nil {
		return d + " (lock not readable: " + err.Error() + ")"
	}
	for _, lk := range locks {
		if lk.Username == user && lk.Locked {
			return fmt.Sprintf("%s failures=%d locked_at=%s from=%s", d, lk.Failures, lk.LockedAt.Format(time.RFC3339), lk.From)
		}
	}
	return d
}
