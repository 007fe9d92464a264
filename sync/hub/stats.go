package hub

import (
	"sync/atomic"
	"time"

	"github.com/aslcns/totem/cms/opkind"
)

// Outcomes of an applied operation, as the metrics label them.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
	KindOther       = "other" // a kind opkind does not declare: labels stay bounded
)

// BatchBuckets are the upper bounds (seconds) of the batch latency
// histogram: one backend commit, from a millisecond to several seconds.
var BatchBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// kindStats counts applied operations by kind and outcome; the map is
// filled by New (every declared kind and KindOther) and never written
// after, so it is read without a lock.
type kindStats map[string]*[2]atomic.Int64 // [accepted, rejected]

func newKindStats() kindStats {
	m := kindStats{KindOther: new([2]atomic.Int64)}
	for _, k := range opkind.All() {
		m[k.Name] = new([2]atomic.Int64)
	}
	return m
}

func (m kindStats) add(kind string, accepted bool) {
	c := m[kind]
	if c == nil {
		c = m[KindOther]
	}
	if c == nil { // a Stats not made by New
		return
	}
	i := 1
	if accepted {
		i = 0
	}
	c[i].Add(1)
}

// AppliedByKind returns the operations applied, by kind and outcome
// (every declared kind, zero included).
func (s *Stats) AppliedByKind() map[[2]string]int64 {
	out := make(map[[2]string]int64, 2*len(s.kinds))
	for k, c := range s.kinds {
		out[[2]string{k, OutcomeAccepted}] = c[0].Load()
		out[[2]string{k, OutcomeRejected}] = c[1].Load()
	}
	return out
}

// latency is a fixed-bucket histogram of batch latencies.
type latency struct {
	counts [13]atomic.Uint64 // len(BatchBuckets)+1: the last is +Inf
	sum    atomic.Int64      // nanoseconds
}

func (l *latency) observe(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(BatchBuckets) && sec > BatchBuckets[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sum.Add(int64(d))
}

// BatchLatency returns the histogram of the time the backend took per
// batch: the count, the sum in seconds and the cumulative count per
// upper bound of BatchBuckets.
func (s *Stats) BatchLatency() (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(BatchBuckets))
	for i, b := range BatchBuckets {
		count += s.batch.counts[i].Load()
		buckets[b] = count
	}
	count += s.batch.counts[len(BatchBuckets)].Load()
	return count, time.Duration(s.batch.sum.Load()).Seconds(), buckets
}
