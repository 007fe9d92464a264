package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
)

// batchSize is the hub's largest batch (sync/hub maxBatch).
const batchSize = 256

// drain applies n operations spread over totems, in batches of the hub's
// size sorted by (totem, seq) as the hub takes them, and checks every one
// was applied once.
func drain(tb testing.TB, s *pgstore.Store, n, totems int) time.Duration {
	ctx := context.Background()
	ops := make([]cms.Op, 0, n)
	for seq := 1; len(ops) < n; seq++ {
		for i := 0; i < totems && len(ops) < n; i++ {
			ops = append(ops, op(fmt.Sprintf("bench-%03d", i), uint64(seq), "x"))
		}
	}
	start := time.Now()
	for len(ops) > 0 {
		k := min(batchSize, len(ops))
		outs, err := s.ApplyBatch(ctx, ops[:k], effect)
		if err != nil {
			tb.Fatal(err)
		}
		for i, o := range outs {
			if !o.Accepted || o.Duplicate || o.OutOfOrder {
				tb.Fatalf("%+v: %+v", ops[i], o)
			}
		}
		ops = ops[k:]
	}
	return time.Since(start)
}

// BenchmarkApplyBatch: ops/s of a 10 000-operation drain through
// ApplyBatch with the test effect (one row per operation), fsync on.
//
//	go test -run '^$' -bench ApplyBatch -benchtime 3x ./cms/pgstore/
func BenchmarkApplyBatch(b *testing.B) {
	for _, totems := range []int{1, 100} {
		b.Run(fmt.Sprintf("10k_ops_%d_totems", totems), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				s := open(b, pgtest.DB(b))
				b.StartTimer()
				total += drain(b, s, 10000, totems)
			}
			b.ReportMetric(float64(10000*b.N)/total.Seconds(), "ops/s")
		})
	}
}

// The benchmark's drain, tiny, in the suite: it keeps working.
func TestApplyBatchDrain(t *testing.T) {
	url := pgtest.DB(t)
	s := open(t, url)
	drain(t, s, 600, 100)
	if n := query[int64](t, url, `SELECT count(*) FROM ops`); n != 600 {
		t.Fatalf("%d ops", n)
	}
	if n := query[int64](t, url, `SELECT max(last_seq) FROM ledger`); n != 6 {
		t.Fatalf("last seq %d", n)
	}
}
