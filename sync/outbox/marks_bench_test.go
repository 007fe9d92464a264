//go:build linux

package outbox_test

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// BenchmarkSendRound is the uplink's cycle on a queue of enqueued
// operations: a round of pending entries is read, marked sent
// (MarkSentAll) and answered (RecordAll). round=1 is a totem of the fleet
// bench, one operation at a time. The metrics are per operation; the
// enqueues are outside the timer and their CPU is subtracted.
func BenchmarkSendRound(b *testing.B) {
	for _, round := range []int{1, 64} {
		b.Run("round="+strconv.Itoa(round), func(b *testing.B) { benchSendRound(b, round) })
	}
}

func benchSendRound(b *testing.B, round int) {
	o, _ := newOutbox(b)
	now := time.Now()
	var commits int64
	var enqCPU time.Duration
	ops := 0
	cpu0 := cpuTime()
	for b.Loop() {
		b.StopTimer()
		e0 := cpuTime()
		for range round {
			if _, err := o.Enqueue("consent", benchPayload, now, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
		enqCPU += cpuTime() - e0
		c0 := outbox.Commits(o)
		b.StartTimer()
		es, err := o.Pending(0, round)
		if err != nil || len(es) != round {
			b.Fatalf("pending %d, %v", len(es), err)
		}
		ids := make([]string, len(es))
		rs := make([]*protocol.Result, len(es))
		for i, e := range es {
			ids[i] = e.ID
			rs[i] = result(e, protocol.TransportReceived, protocol.ProcessingAccepted)
		}
		if _, err := o.MarkSentAll(ids, time.Now()); err != nil {
			b.Fatal(err)
		}
		if _, errs := o.RecordAll(rs); errs[0] != nil {
			b.Fatal(errs[0])
		}
		b.StopTimer()
		commits += outbox.Commits(o) - c0
		ops += round
		b.StartTimer()
	}
	// The enqueues' CPU is in it too: measured apart, it is subtracted.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops), "ns/sent-op")
	b.ReportMetric(float64((cpuTime()-cpu0-enqCPU).Nanoseconds())/float64(ops), "cpu-ns/sent-op")
	b.ReportMetric(float64(commits)/float64(ops), "commits/op")
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
