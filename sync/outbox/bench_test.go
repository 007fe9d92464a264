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
	"github.com/aslcns/totem/sync/protocol"
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

// BenchmarkFullRound records rounds of 50 results (RecordAll, as the
// uplink's recorder does) in an outbox at MaxSize (512 KiB, 400-byte
// citizens' operations), refilled to the limit before each round (outside
// the timer), with no reader and with two readers looping on Pending and
// Usage as the uplink and telemetry do. It reports the time per round and,
// per round, the commits, the pauses for readers and the writes tried
// again at MaxSize.
func BenchmarkFullRound(b *testing.B) {
	for _, readers := range []int{0, 2} {
		b.Run("readers="+strconv.Itoa(readers), func(b *testing.B) { benchFullRound(b, readers) })
	}
}

func benchFullRound(b *testing.B, readers int) {
	const round = 50
	o := openWith(b, dbPath(b), &outbox.Options{MaxSize: 512 << 10})
	payload := jsonPayload('c', 400)
	es := fillToFull(b, o, payload)
	defer busyReaders(o, readers)()
	var commits, pauses, retries int64
	rounds := 0
	for b.Loop() {
		b.StopTimer()
		for len(es) < 2*round { // back to the limit, settled entries making room
			es = append(es, fillToFull(b, o, payload)...)
		}
		rs := make([]*protocol.Result, round)
		for i, e := range es[:round] {
			rs[i] = final(e)
		}
		es = es[round:]
		c0 := outbox.Commits(o)
		w0, r0 := outbox.Full(o)
		b.StartTimer()
		_, errs := o.RecordAll(rs)
		b.StopTimer()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		w, r := outbox.Full(o)
		commits, pauses, retries = commits+outbox.Commits(o)-c0, pauses+w-w0, retries+r-r0
		rounds++
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(rounds), "ms/round")
	b.ReportMetric(float64(commits)/float64(rounds), "commits/round")
	b.ReportMetric(float64(pauses)/float64(rounds), "pauses/round")
	b.ReportMetric(float64(retries)/float64(rounds), "retries/round")
}
