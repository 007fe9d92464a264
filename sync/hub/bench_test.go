package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/aslcns/totem/sync/uplink"
)

// drain measures the end-to-end drain of a backlog of n operations: outbox
// → uplink → embedded broker → hub → CMS applied → result → outbox done.
func drain(tb testing.TB, n int) time.Duration {
	ctx, c := startCentral(tb, 5*time.Minute, totemUser("t-bench"))
	tot := c.Creds("t-bench")
	box := synctest.QueuedOutboxAt(tb, filepath.Join(c.Dir, "outbox.db"), n)
	c.StartHub(hub.Options{})
	start := time.Now()
	up := uplink.New(uplink.Options{Totem: "t-bench", URL: c.URL(), Username: tot.Username, Password: tot.Password, Outbox: box})
	uctx, ucancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- up.Run(uctx) }()
	drained(ctx, tb, box, "")
	elapsed := time.Since(start)
	ucancel()
	<-done
	c.StopHub()
	if audit, _ := c.CMS.Audit(); len(audit) != n {
		tb.Fatalf("applied %d of %d", len(audit), n)
	}
	return elapsed
}

// BenchmarkDrain reports end-to-end operations per second for backlogs of
// several sizes (sync.md: the anchor drains 90 msg/s at 5 000 queued).
func BenchmarkDrain(b *testing.B) {
	for _, n := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				total += drain(b, n)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "ops/s")
		})
	}
}
