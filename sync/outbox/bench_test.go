package outbox_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/outbox"
	bolt "go.etcd.io/bbolt"
)

// writeBytes reads this process's write_bytes from /proc/self/io: what
// reached the block layer, fsyncs included. -1 where unavailable.
func writeBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// measure runs the timed part of a benchmark and reports ops/s, latency
// percentiles and bytes written per operation.
func measure(b *testing.B, run func(record func(time.Duration))) {
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	record := func(d time.Duration) { mu.Lock(); lat = append(lat, d); mu.Unlock() }
	w0 := writeBytes()
	b.ResetTimer()
	start := time.Now()
	run(record)
	elapsed := time.Since(start)
	b.StopTimer()
	w1 := writeBytes()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if w0 >= 0 && w1 >= 0 {
		b.ReportMetric(float64(w1-w0)/float64(b.N), "B/op-written")
	}
}

var benchPayload = jsonPayload('p', 512)

func BenchmarkEnqueueSerial(b *testing.B) {
	o, _ := newOutbox(b)
	now := time.Now()
	measure(b, func(record func(time.Duration)) {
		for range b.N {
			t := time.Now()
			if _, err := o.Enqueue("consent", benchPayload, now, time.Time{}); err != nil {
				b.Fatal(err)
			}
			record(time.Since(t))
		}
	})
}

// BenchmarkEnqueueParallel runs 32 producers (RunParallel goroutines).
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, producers := range []int{16, 32} {
		b.Run("producers="+strconv.Itoa(producers), func(b *testing.B) {
			o, _ := newOutbox(b)
			now := time.Now()
			b.SetParallelism((producers + runtimeProcs() - 1) / runtimeProcs())
			c0 := outbox.Commits(o)
			defer func() { b.ReportMetric(float64(b.N)/float64(outbox.Commits(o)-c0), "ops/commit") }()
			enqueueParallel(b, o, now)
		})
	}
}

// enqueueParallel measures Enqueue from b's parallel producers, each
// call's latency recorded.
func enqueueParallel(b *testing.B, o *outbox.Outbox, now time.Time) {
	measure(b, func(record func(time.Duration)) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t := time.Now()
				if _, err := o.Enqueue("consent", benchPayload, now, time.Time{}); err != nil {
					b.Error(err)
					return
				}
				record(time.Since(t))
			}
		})
	})
}

// BenchmarkEnqueueSealed is BenchmarkEnqueueParallel with 32 producers
// and payloads sealed with AES-GCM.
func BenchmarkEnqueueSealed(b *testing.B) {
	keys, err := outbox.LoadKeyring(filepath.Join(b.TempDir(), "keys.json"))
	if err != nil {
		b.Fatal(err)
	}
	o := openWith(b, dbPath(b), &outbox.Options{Keys: keys})
	now := time.Now()
	b.SetParallelism((32 + runtimeProcs() - 1) / runtimeProcs())
	enqueueParallel(b, o, now)
}

// BenchmarkBoltUpdate is the anchor: one bare bbolt Update (one fsync)
// per 512-byte message, on the same disk.
func BenchmarkBoltUpdate(b *testing.B) {
	db, err := bolt.Open(dbPath(b), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("q")); return err })
	measure(b, func(record func(time.Duration)) {
		for i := range b.N {
			t := time.Now()
			err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("q")).Put(binary.BigEndian.AppendUint64(nil, uint64(i)), benchPayload)
			})
			if err != nil {
				b.Fatal(err)
			}
			record(time.Since(t))
		}
	})
}

func runtimeProcs() int { return max(1, runtime.GOMAXPROCS(0)) }
