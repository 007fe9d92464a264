package pgstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/cms/refcms"
)

// batchSize is the hub's largest batch (sync/hub maxBatch).
const batchSize = 256

// drain applies n operations spread over totems, in batches of the hub's
// size sorted by (totem, seq) as the hub takes them, and checks every one
// was applied once.
func drain(tb testing.TB, s *pgstore.Store, n, totems int) time.Duration {
	return drainWith(tb, func(ops []cms.Op) ([]cms.Outcome, error) {
		return s.ApplyBatch(context.Background(), ops, effect)
	}, n, totems, "x")
}

// drainWith is drain through apply, with operations of kind.
func drainWith(tb testing.TB, apply func([]cms.Op) ([]cms.Outcome, error), n, totems int, kind string) time.Duration {
	ops := make([]cms.Op, 0, n)
	for seq := 1; len(ops) < n; seq++ {
		for i := 0; i < totems && len(ops) < n; i++ {
			ops = append(ops, op(fmt.Sprintf("bench-%03d", i), uint64(seq), kind))
		}
	}
	start := time.Now()
	for len(ops) > 0 {
		k := min(batchSize, len(ops))
		outs, err := apply(ops[:k])
		if err != nil {
			tb.Fatal(err)
		}
		for i, o := range outs {
			if o.Duplicate || o.OutOfOrder || o.Protocol == "" {
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

// BenchmarkApplyBatchFrame compares the exactly-once frame alone on both
// stores, same run, same machine: operations of kind void (numbered,
// audited, nothing else written) through refcms on bbolt and through
// this package with an effect that writes nothing either.
//
//	go test -run '^$' -bench ApplyBatchFrame -benchtime 3x ./cms/pgstore/
func BenchmarkApplyBatchFrame(b *testing.B) {
	void := func(context.Context, *pgstore.Tx, cms.Op, string) (pgstore.Applied, error) {
		return pgstore.Applied{Rejects: []cms.Reject{{Code: cms.CodeVoid, Message: "void"}}}, nil
	}
	for _, totems := range []int{1, 100} {
		b.Run(fmt.Sprintf("bbolt_10k_ops_%d_totems", totems), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				st, err := refcms.Open(filepath.Join(b.TempDir(), "cms.db"), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				total += drainWith(b, func(ops []cms.Op) ([]cms.Outcome, error) {
					return st.ApplyBatch(context.Background(), ops)
				}, 10000, totems, cms.KindVoid)
				b.StopTimer()
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(10000*b.N)/total.Seconds(), "ops/s")
		})
		b.Run(fmt.Sprintf("pg_10k_ops_%d_totems", totems), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				s := open(b, pgtest.DB(b))
				b.StartTimer()
				total += drainWith(b, func(ops []cms.Op) ([]cms.Outcome, error) {
					return s.ApplyBatch(context.Background(), ops, void)
				}, 10000, totems, cms.KindVoid)
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
